import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {byteTokenizer, loadTokenizer} from './tokenizer.js'

const dir = mkdtempSync(join(tmpdir(), 'hpd-tokenizer-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('tokenizers', () => {
  it('byte tokenizer: <s> + UTF-8 bytes, specials dropped on decode', () => {
    const t = byteTokenizer()
    const ids = t.encode('hé')
    expect(ids).toEqual([256, 104, 195, 169])
    expect(t.decode([...ids, 257, 300])).toBe('hé')
    expect(t.encode('a', {addSpecialTokens: false})).toEqual([97])
  })

  it('tokenizer.json through @huggingface/tokenizers and the chat template through @huggingface/jinja', () => {
    writeFileSync(
      join(dir, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        added_tokens: [
          {id: 3, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true},
          {id: 4, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true},
        ],
        normalizer: null,
        pre_tokenizer: {type: 'Whitespace'},
        post_processor: null,
        decoder: null,
        model: {type: 'WordLevel', vocab: {hello: 0, world: 1, '[UNK]': 2, '<s>': 3, '</s>': 4}, unk_token: '[UNK]'},
      }),
    )
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        bos_token: '<s>',
        eos_token: '</s>',
        chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}',
      }),
    )
    const t = loadTokenizer(dir)
    expect(t.kind).toBe('huggingface')
    expect(t.encode('hello world hello')).toEqual([0, 1, 0])
    expect(t.encode('<s>hello', {addSpecialTokens: false})).toEqual([3, 0])
    expect(t.eosId).toBe(4)
    expect(t.applyChatTemplate!([{role: 'user', content: 'hello'}])).toBe('<s>[user] hello [assistant]')
    expect(t.decode([])).toBe('') // the library throws on an empty list; no ids is no text
  })

  it('a directory without tokenizer.json is a ModelConfigError naming it', () => {
    expect(() => loadTokenizer(join(dir, 'missing'))).toThrow(expect.objectContaining({code: 'HPD_TOKENIZER_MISSING'}))
  })
})
