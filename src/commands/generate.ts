import {Flags} from '@oclif/core'

import {HpdCommand} from '../cli/hpd-command.js'
import {generate, type GenerateResult} from '../engine/generate.js'
import {enginePresetList} from '../model/index.js'

export default class Generate extends HpdCommand<GenerateResult> {
  static override summary = 'Run a model on the CPU engine in this process: prefill a prompt, decode tokens.'
  static override description = `Loads --model (a built-in tiny preset, generated into $HPD_CACHE_DIR or ~/.cache/hpd on
first use, or a local Hugging Face directory with config.json, *.safetensors and tokenizer.json),
runs it with --tp ranks in this process, and prints the text, the token ids and the measured
prefill / decode tokens per second. --temperature 0 (default) is greedy decoding.`

  static override examples = [
    '<%= config.bin %> generate --model tiny --prompt "Hello" --max-tokens 32',
    '<%= config.bin %> generate --model tiny-hybrid-g1 --prompt "Hello" --tp 2 --temperature 0.8 --top-p 0.9 --seed 7 --json',
    '<%= config.bin %> generate --model ./my-nemotron-h-dir --prompt "Once upon a time"',
  ]

  static override flags = {
    model: Flags.string({char: 'm', summary: `A tiny preset (${enginePresetList()}), or a model directory.`, default: 'tiny', env: 'HPD_MODEL'}),
    prompt: Flags.string({char: 'p', summary: 'Prompt text.', required: true, env: 'HPD_PROMPT'}),
    'max-tokens': Flags.integer({summary: "Tokens to generate (prompt + max-tokens ≤ the model's context).", default: 32, env: 'HPD_MAX_TOKENS'}),
    tp: Flags.integer({summary: 'Tensor-parallel ranks (run in this process), 1..1024 dividing the heads.', default: 1, env: 'HPD_TP'}),
    temperature: Flags.string({summary: 'Sampling temperature in [0, 100]; 0 = greedy.', default: '0', env: 'HPD_TEMPERATURE'}),
    'top-p': Flags.string({summary: 'Nucleus sampling mass in (0, 1].', default: '1', env: 'HPD_TOP_P'}),
    'top-k': Flags.integer({summary: 'Keep the k most likely tokens (0 = all), 0..2147483647.', default: 0, env: 'HPD_TOP_K'}),
    seed: Flags.integer({summary: 'Sampling seed, 0..4294967295.', default: 0, env: 'HPD_SEED'}),
    'ignore-eos': Flags.boolean({summary: 'Keep generating past the end-of-sequence token.', default: false}),
    chat: Flags.boolean({summary: "Wrap the prompt as a user message in the model's chat template (tokenizer_config.json).", default: false}),
  }

  async run(): Promise<GenerateResult> {
    const {flags} = await this.parse(Generate)
    const result = generate({
      model: flags.model,
      prompt: flags.prompt,
      maxTokens: flags['max-tokens'],
      tp: flags.tp,
      temperature: Number(flags.temperature),
      topP: Number(flags['top-p']),
      topK: flags['top-k'],
      seed: flags.seed,
      ignoreEos: flags['ignore-eos'],
      chat: flags.chat,
    })
    this.print(result.text)
    this.info(`tokens: ${result.tokenIds.join(' ')}`)
    this.info(
      `prefill ${result.prefillTokens} tokens at ${result.prefillTokensPerSecond.toFixed(1)} tok/s · decode ${result.decodeTokens} tokens at ${result.decodeTokensPerSecond.toFixed(1)} tok/s · TP ${result.tp} · finish ${result.finishReason}`,
    )
    return result
  }
}
