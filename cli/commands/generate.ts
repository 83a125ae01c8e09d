// tapir generate: text from a prompt (or a chat turn), streamed as it is decoded.
import { UsageError } from '../../compiler/errors.js';
import { renderChat, turnEnds } from '../../runtime/chat.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';
import { steeringOf } from '../steering.js';
import { loadSaeLens } from '../../runtime/sae/files.js';
import { checkSaeFits } from '../../runtime/sae/splice.js';

export default command({
  name: 'generate',
  summary: 'generate text from a prompt',
  usage: 'tapir generate [-m MODEL] [-p PROMPT] [-n NEW_TOKENS] [--steer SPEC]... [options]',
  about: 'Generates text. Without a prompt it starts from BOS.',
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (default: empty)' },
    'new-tokens': { kind: 'int', short: 'n', arg: 'N', min: 1, default: 256, help: 'tokens to generate (default: 256; stops early at EOS or a full context)' },
    temperature: { kind: 'number', arg: 'T', min: 0, max: 100, default: 0, help: '0 is greedy (default: 0)' },
    'top-p': { kind: 'number', arg: 'P', min: 0, max: 1, default: 0.9, help: 'nucleus sampling mass, used when T > 0 (default: 0.9; 0 or 1 turns it off)' },
    seed: { kind: 'int', arg: 'S', min: 0, help: 'RNG seed for sampling (default: from the clock; printed with --json)' },
    chat: { kind: 'flag', help: "the prompt is a user's message, laid out by the model's chat template\n(GGUF tokenizer.chat_template); generation stops at the end of the turn" },
    system: { kind: 'string', arg: 'TEXT', help: 'with --chat: a system message first' },
    steer: { kind: 'string', arg: 'SPEC', multiple: true, help: "an edit at a hook, at every position (repeatable): HOOK:add=FILE.safetensors[*SCALE]\n(a steering vector; FILE#TENSOR picks one of several), HOOK:mean=FILE, HOOK:scale=X,\nHOOK:zero; HOOK may filter a head ([head=N]), e.g. blocks.2.hook_resid_post:add=v.safetensors*4" },
    sae: { kind: 'string', arg: 'DIR', help: "an SAE (SAELens's layout) spliced in at its hook while generating" },
  },
  after: '--json prints {tokens (BOS first, prompt included), promptTokens, text, seed, timings}.',
  async run(o) {
    if (o.system !== undefined && !o.chat) throw new UsageError('--system goes with --chat');
    const interventions = steeringOf(o.steer ?? []);
    const { model, loadMs } = await openModel(o);
    try {
      const sae = o.sae !== undefined ? loadSaeLens(o.sae) : undefined;
      if (sae) checkSaeFits(model.graph, sae);
      // --chat: the prompt is the user's turn, laid out by the model's own chat template
      const chat = o.chat ? renderChat(model.tokenizer, [...(o.system !== undefined ? [{ role: 'system' as const, content: o.system }] : []), { role: 'user', content: o.prompt ?? '' }]) : undefined;
      const { temperature, 'top-p': topP } = o;
      const r = await model.generate({
        ...(chat !== undefined ? { tokens: model.tokenizer.encode(chat, { bos: false, special: true }), stopTokens: turnEnds(model.tokenizer) } : { prompt: o.prompt ?? '' }),
        maxNewTokens: o['new-tokens'], temperature, topP, seed: o.seed, interventions, saes: sae ? [{ sae }] : [],
        onText: o.json ? undefined : out,
      });
      if (o.json) {
        out(JSON.stringify({
          model: model.file, tokens: r.tokens, promptTokens: r.promptTokens, text: r.text, ...(chat !== undefined ? { chatPrompt: chat } : {}),
          temperature, topP, seed: r.seed, timings: { loadMs: +loadMs.toFixed(1), prefillMs: +r.timings.prefillMs.toFixed(1), decodeMs: +r.timings.decodeMs.toFixed(1), decodeTokensPerSecond: +r.timings.decodeTokensPerSecond.toFixed(2) },
        }) + '\n');
      } else {
        out('\n');
        process.stderr.write(`tapir: ${r.tokens.length - r.promptTokens} tokens at ${r.timings.decodeTokensPerSecond.toFixed(1)} tokens/s\n`);
      }
    } finally {
      model.dispose();
    }
  },
});
