// Chat prompts through the template the model file carries (GGUF `tokenizer.chat_template`, Jinja,
// rendered by @huggingface/jinja as Hugging Face renders it), and the tokens that end a turn.
import { Template } from '@huggingface/jinja';
import { UsageError } from '../compiler/errors.js';
import { TokenType, type Tokenizer } from './tokenizers/common.js';

export interface ChatMessage { role: 'system' | 'user' | 'assistant'; content: string }

/** The conversation as the model was trained to read it, with the assistant's turn opened. */
export function renderChat(tok: Tokenizer, messages: readonly ChatMessage[]): string {
  const v = tok.vocab;
  if (!v.chatTemplate) throw new UsageError('this model carries no chat template (GGUF tokenizer.chat_template): use a plain prompt');
  try {
    return new Template(v.chatTemplate).render({
      messages, add_generation_prompt: true,
      bos_token: tok.piece(v.bos), eos_token: tok.piece(v.eos), unk_token: tok.piece(v.unk),
    });
  } catch (e) {
    throw new UsageError(`the model's chat template failed: ${(e as Error).message}`);
  }
}

/** Special tokens that end a turn in the families' templates, where the vocabulary has them. */
const TURN_ENDS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<|end_of_text|>', '<|endoftext|>', '</s>'];
export const turnEnds = (tok: Tokenizer): number[] => TURN_ENDS.map((p) => tok.idOf(p)).filter((id): id is number => id !== undefined && tok.vocab.types[id] === TokenType.Control);
