import type {ServeTokenizer} from '../serve/backend.js'

/**
 * A tokenizer for tests of the OpenAI layer: one token per UTF-8 byte, ids ≥ 256 special (no
 * text); chat is `<role>content` per message then `<assistant>`; `bos`, when given, starts every
 * encoding made with special tokens.
 */
export function byteTokenizer(o: {bos?: number} = {}): ServeTokenizer {
  return {
    encode: (text, options) => [...(o.bos !== undefined && options?.addSpecialTokens !== false ? [o.bos] : []), ...Buffer.from(text, 'utf8')],
    encodeChat: (messages) => [...Buffer.from(`${messages.map((m) => `<${m.role}>${m.content}`).join('')}<assistant>`, 'utf8')],
    decode: (ids) => Buffer.from(ids.filter((t) => t < 256)).toString('utf8'),
    createDecoder: () => {
      const d = new TextDecoder()
      return {push: (t) => (t < 256 ? d.decode(Uint8Array.of(t), {stream: true}) : ''), flush: () => d.decode()}
    },
  }
}
