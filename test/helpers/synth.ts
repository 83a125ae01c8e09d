export { writeSynthGGUF as writeSynth } from '../../runtime/node/write_file.js';

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { synthModel } from '../../runtime/synth/synth.js';
import { writeSynthGGUF } from '../../runtime/node/write_file.js';

let tiny: string | undefined;
/** The `tiny` synth preset (f32) as a GGUF file, written once per test process. */
export function tinySynth(): string {
  if (!tiny) tiny = writeSynthGGUF(synthModel('tiny', 'f32'), path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-tiny-')), 'tiny.gguf'));
  return tiny;
}
