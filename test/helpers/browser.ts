// Headless Chromium (Debian's /usr/bin/chromium) through playwright-core, on a closed network.
import { chromium, type Browser } from 'playwright-core';

/** `webgpu`: with WebGPU on (Chromium's own software Vulkan where there is no GPU) instead of no GPU at all. */
export async function launchChromium(o: { webgpu?: boolean } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', ...(o.webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : ['--disable-gpu']), '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
