import {existsSync} from 'node:fs'
import {join} from 'node:path'

import {Template} from '@huggingface/jinja'
import {Tokenizer as HfTokenizer} from '@huggingface/tokenizers'

import {ModelConfigError} from '../errors.js'
import {FILE_LIMITS, type ModelFileKind, readModelJson} from '../model/index.js'

/** Text ↔ token ids, plus the chat template when the model has one. */
export interface TextTokenizer {
  readonly kind: 'byte' | 'huggingface'
  readonly bosId: number | undefined
  readonly eosId: number | undefined
  /**
   * Token ids of `text`, with the tokenizer's special tokens (BOS) added unless
   * `addSpecialTokens: false` (text from a chat template already carries them).
   */
  encode(text: string, options?: {addSpecialTokens?: boolean}): number[]
  /** Text of `ids`; special tokens are dropped. */
  decode(ids: readonly number[]): string
  /** The prompt text for chat `messages` (tokenizer_config.json `chat_template`), if the model has one. */
  applyChatTemplate?(messages: readonly {role: string; content: string}[]): string
}

/** The tiny models' byte tokenizer: ids 0..255 are bytes, 256 `<s>`, 257 `</s>`, 258 `<pad>`. */
export const BYTE_TOKENIZER_FILE = 'hpd_byte_tokenizer.json'
export const BYTE_BOS = 256
export const BYTE_EOS = 257
export const BYTE_PAD = 258

export function byteTokenizer(): TextTokenizer {
  return {
    kind: 'byte',
    bosId: BYTE_BOS,
    eosId: BYTE_EOS,
    encode: (text, options) => [...(options?.addSpecialTokens === false ? [] : [BYTE_BOS]), ...Buffer.from(text, 'utf8')],
    decode: (ids) => Buffer.from(ids.filter((id) => id >= 0 && id < 256)).toString('utf8'),
  }
}

/**
 * The tokenizer of a model directory: the byte tokenizer when the directory carries
 * `hpd_byte_tokenizer.json` (the generated tiny models), else `tokenizer.json` +
 * `tokenizer_config.json` through @huggingface/tokenizers and the chat template through
 * @huggingface/jinja.
 */
export function loadTokenizer(dir: string): TextTokenizer {
  if (existsSync(join(dir, BYTE_TOKENIZER_FILE))) return byteTokenizer()
  const tokPath = join(dir, 'tokenizer.json')
  if (!existsSync(tokPath)) {
    throw new ModelConfigError('HPD_TOKENIZER_MISSING', `${dir} has no tokenizer.json`, {
      hint: 'Copy tokenizer.json and tokenizer_config.json from the model repository into the directory.',
      details: {dir},
    })
  }
  const tokenizerJson = readJson(tokPath, {what: 'tokenizer.json', maxBytes: FILE_LIMITS.tokenizerBytes})
  const cfgPath = join(dir, 'tokenizer_config.json')
  const config = existsSync(cfgPath) ? readJson(cfgPath, {what: 'tokenizer_config.json', maxBytes: FILE_LIMITS.tokenizerConfigBytes}) : {}
  const hf = new HfTokenizer(tokenizerJson, config)
  const idOf = (token: unknown): number | undefined => {
    const text = typeof token === 'string' ? token : (token as {content?: string} | undefined)?.content
    if (!text) return undefined
    const ids = hf.encode(text, {add_special_tokens: false}).ids
    return ids.length === 1 ? ids[0] : undefined
  }
  const templateText = typeof config.chat_template === 'string' ? config.chat_template : undefined
  const template = templateText ? new Template(templateText) : undefined
  return {
    kind: 'huggingface',
    bosId: idOf(config.bos_token),
    eosId: idOf(config.eos_token),
    encode: (text, options) => hf.encode(text, {add_special_tokens: options?.addSpecialTokens !== false}).ids,
    // @huggingface/tokenizers throws on an empty list; no ids is no text (a prefill leg's empty output).
    decode: (ids) => (ids.length === 0 ? '' : hf.decode([...ids], {skip_special_tokens: true})),
    applyChatTemplate: template
      ? (messages) =>
          template.render({
            messages,
            add_generation_prompt: true,
            bos_token: tokenString(config.bos_token),
            eos_token: tokenString(config.eos_token),
          })
      : undefined,
  }
}

function tokenString(token: unknown): string {
  return typeof token === 'string' ? token : ((token as {content?: string} | undefined)?.content ?? '')
}

/** A tokenizer file through src/model's bounded reader: special and oversized files are refused, errors never quote the file. */
function readJson(path: string, kind: ModelFileKind): Record<string, unknown> {
  const value = readModelJson(path, kind, (where) => new ModelConfigError('HPD_TOKENIZER_BAD_JSON', `${path} is not valid JSON${where}`, {details: {path}}))
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelConfigError('HPD_TOKENIZER_BAD_JSON', `${path} is not a JSON object`, {details: {path}})
  }
  return value as Record<string, unknown>
}
