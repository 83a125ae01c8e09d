// tapir serve: the viewer, a local web page over one model.
import path from 'node:path';
import { UsageError } from '../../compiler/errors.js';
import { repoRoot } from '../../runtime/node/load.js';
import { loadSaeLens } from '../../runtime/sae/files.js';
import { readManifest } from '../../runtime/sae/store.js';
import { graphPictures } from '../../viewer/graph.js';
import { startServer } from '../../viewer/server.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';

export default command({
  name: 'serve',
  summary: "the viewer: a local web page for all of the above, on this machine's GPU or the browser's",
  usage: 'tapir serve [-m MODEL] [--port P] [--host H] [--sae DIR [--sae-store DIR]] [--stdin-stop]',
  about: `Starts the viewer, a web page over one model: generation token by token with probabilities, the logit
lens, attention patterns, activation patching, the compiled graph, SAE features and explain reports.
Prints its URL and its process id and runs until interrupted (Ctrl-C), killed (kill PID: the id it
prints, which is not npx's), or, with --stdin-stop, until its standard input closes. Work runs on this
machine's GPU, one request at a time; open the URL with ?client=1 to run the model in the browser on
its own WebGPU instead.`,
  options: {
    port: { kind: 'int', arg: 'P', min: 0, max: 65535, default: 8177, help: 'port to listen on (default 8177; 0: any free port)' },
    host: { kind: 'string', arg: 'H', default: '127.0.0.1', help: 'address to listen on (default 127.0.0.1: this machine only). Any other address\nexposes the viewer to the network; the page then says so' },
    sae: { kind: 'string', arg: 'DIR', help: "an SAE in SAELens's layout, shown token by token (its hook must be the model's)" },
    'sae-store': { kind: 'string', arg: 'DIR', help: 'the activation store its feature dashboards take top contexts from' },
    'stdin-stop': { kind: 'flag', help: 'stop when standard input closes (for a parent process that starts it)' },
  },
  async run(o) {
    const { port, host } = o;
    if (o['sae-store'] !== undefined && o.sae === undefined) throw new UsageError('--sae-store goes with --sae');
    const sae = o.sae !== undefined ? loadSaeLens(o.sae) : undefined;
    if (o['sae-store'] !== undefined) readManifest(o['sae-store']);
    const { model } = await openModel(o);
    const file = model.file;
    try {
      if (sae && (!sae.hook || !model.hookNames.includes(sae.hook))) throw new UsageError(`the SAE's hook '${sae.hook ?? '(none)'}' is not a hook of this model`);
      const graphSvg = graphPictures(model, file);
      const viewer = await startServer({ model, modelFile: file, host, port, assets: path.join(repoRoot, 'dist/page'), graphSvg, sae, saeStore: o['sae-store'] });
      // the serving process's own id: under npx, the process a user started is npx, and killing it left this one running
      if (o.json) out(JSON.stringify({ url: viewer.url, exposed: viewer.exposed, pid: process.pid }) + '\n');
      else out(`tapir viewer: ${viewer.url}${viewer.exposed ? `  (listening on ${host}: reachable from the network)` : ''}\nprocess ${process.pid}: Ctrl-C or kill ${process.pid} to stop\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        if (o['stdin-stop']) { process.stdin.once('end', resolve); process.stdin.once('close', resolve); process.stdin.resume(); }
      });
      await viewer.close();
    } finally {
      model.dispose();
    }
  },
});
