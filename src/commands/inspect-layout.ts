import {writeFileSync} from 'node:fs'

import {Flags} from '@oclif/core'

import {HpdCommand} from '../cli/hpd-command.js'
import {UsageError} from '../errors.js'
import {ATTENTION_BACKENDS, type AttentionBackend, type ConvLayout, type DecodeSideOptions} from '../layout/types.js'
import {inspectLayout, type InspectLayoutResult} from '../layout/present/inspect-result.js'
import {NEWEST_VLLM} from '../layout/vllm-versions.js'
import {flagDtypeChoice, loadModelSpec} from '../model/index.js'

const DTYPE_CHOICES = ['auto', 'bf16', 'fp16', 'fp32', 'fp8']

export default class InspectLayout extends HpdCommand<InspectLayoutResult> {
  static override summary = 'Show the hybrid KV-cache layout, descriptor views and TP read plan of a prefill/decode pair.'
  static override description = `Computes, without a GPU, vLLM's exact cache geometry for a hybrid (or plain attention) model:
block sizes, padding, shared tensors, per-rank page map, the read map between prefill and decode
ranks for one request, the compatibility hash and the vLLM pitfalls of the configuration at a vLLM
release (--vllm-version). The two sides may differ in TP, block size, kernel block size; the
--decode-* flags set the decode side apart, and a pair whose bytes cannot correspond is refused
with a code naming why. --format svg writes a picture to --output FILE, or to stdout without
--output (with --json: result.svg).`

  static override examples = [
    '<%= config.bin %> inspect-layout --model nemotron-h-8b --tp 2 --decode-tp 1',
    '<%= config.bin %> inspect-layout --model nemotron-nano-9b-v2 --tp 8 --decode-tp 2 --prompt-tokens 131072 --json',
    '<%= config.bin %> inspect-layout --model tiny-hybrid --attention-backend cpu --prompt-tokens 400 --cached-tokens 240',
    '<%= config.bin %> inspect-layout --model ./config.json --block-size 128 --format svg --output layout.svg',
    '<%= config.bin %> inspect-layout --model ./config.json --tp 4 --decode-tp 2 --vllm-version 0.22',
  ]

  static override flags = {
    model: Flags.string({char: 'm', summary: 'Preset name, config.json path or model directory.', required: true, env: 'HPD_MODEL'}),
    tp: Flags.integer({summary: 'Prefill tensor-parallel size, 1..1024.', default: 1, env: 'HPD_TP'}),
    'decode-tp': Flags.integer({summary: 'Decode tensor-parallel size, 1..1024 (default: --tp).', env: 'HPD_DECODE_TP'}),
    'block-size': Flags.integer({summary: 'Requested logical block size in tokens, 1..1048576 (hybrids grow it to fit a Mamba page).', env: 'HPD_BLOCK_SIZE'}),
    'kv-cache-dtype': Flags.string({summary: "K/V cache dtype (auto = model dtype; with --attention-backend cpu, the CPU engine's fp32).", options: DTYPE_CHOICES, default: 'auto', env: 'HPD_KV_CACHE_DTYPE'}),
    'mamba-cache-dtype': Flags.string({summary: "Mamba conv state dtype (auto = config mamba_cache_dtype, else model dtype; with --attention-backend cpu, fp32).", options: DTYPE_CHOICES, default: 'auto', env: 'HPD_MAMBA_CACHE_DTYPE'}),
    'mamba-ssm-dtype': Flags.string({summary: 'Mamba SSM state dtype (auto = config / family default, fp32 for Nemotron-H, else the conv dtype; with --attention-backend cpu, fp32).', options: DTYPE_CHOICES, default: 'auto', env: 'HPD_MAMBA_SSM_DTYPE'}),
    'attention-backend': Flags.string({summary: "Attention backend whose kernel block sizes apply (cpu = hpd's own engine, with its fp32 caches).", options: [...ATTENTION_BACKENDS], default: 'flash-attn', env: 'HPD_ATTENTION_BACKEND'}),
    'conv-layout': Flags.string({summary: 'Conv state layout (vLLM VLLM_SSM_CONV_STATE_LAYOUT).', options: ['DS', 'SD'], default: 'DS', env: 'HPD_CONV_LAYOUT'}),
    'kernel-block-size': Flags.integer({summary: "Kernel block in tokens instead of the backend's choice (both sides unless --decode-kernel-block-size).", min: 1, env: 'HPD_KERNEL_BLOCK_SIZE'}),
    'decode-kernel-block-size': Flags.integer({summary: 'Decode kernel block in tokens (default: --kernel-block-size, else the backend\'s choice).', min: 1, env: 'HPD_DECODE_KERNEL_BLOCK_SIZE'}),
    'decode-block-size': Flags.integer({summary: 'Decode requested logical block size, 1..1048576 (default: --block-size).', env: 'HPD_DECODE_BLOCK_SIZE'}),
    'decode-model': Flags.string({summary: 'Decode model config (default: --model); refused unless its cache geometry matches.', env: 'HPD_DECODE_MODEL'}),
    'decode-kv-cache-dtype': Flags.string({summary: 'Decode K/V cache dtype (default: --kv-cache-dtype).', options: DTYPE_CHOICES, env: 'HPD_DECODE_KV_CACHE_DTYPE'}),
    'decode-mamba-cache-dtype': Flags.string({summary: 'Decode conv state dtype (default: --mamba-cache-dtype).', options: DTYPE_CHOICES, env: 'HPD_DECODE_MAMBA_CACHE_DTYPE'}),
    'decode-mamba-ssm-dtype': Flags.string({summary: 'Decode SSM state dtype (default: --mamba-ssm-dtype).', options: DTYPE_CHOICES, env: 'HPD_DECODE_MAMBA_SSM_DTYPE'}),
    'decode-conv-layout': Flags.string({summary: 'Decode conv state layout (default: --conv-layout).', options: ['DS', 'SD'], env: 'HPD_DECODE_CONV_LAYOUT'}),
    'vllm-version': Flags.string({summary: `vLLM release to judge the pitfalls against, e.g. 0.22 (default: ${NEWEST_VLLM}, the newest hpd knows).`, env: 'HPD_VLLM_VERSION'}),
    'prompt-tokens': Flags.integer({summary: 'Prompt length N of the request to plan (hybrids transfer N−1), up to 16777216.', default: 3000, env: 'HPD_PROMPT_TOKENS'}),
    'cached-tokens': Flags.integer({summary: 'Tokens the decode side already holds (its prefix-cache hit, whole decode logical blocks): their attention reads are skipped, the state is still read.', default: 0, env: 'HPD_CACHED_TOKENS'}),
    descriptors: Flags.boolean({summary: 'Also print the full descriptor tables (vLLM FA and SSM views), up to 1048576 rows.', default: false, env: 'HPD_DESCRIPTORS'}),
    format: Flags.string({summary: 'Output format.', options: ['table', 'svg'], default: 'table', env: 'HPD_FORMAT'}),
    output: Flags.string({char: 'o', summary: 'With --format svg: write the SVG to this file instead of stdout.', env: 'HPD_OUTPUT'}),
  }

  async run(): Promise<InspectLayoutResult> {
    const {flags} = await this.parse(InspectLayout)
    if (flags.output !== undefined && flags.format !== 'svg') {
      throw new UsageError('HPD_USAGE_OUTPUT_WITHOUT_SVG', '--output only applies to --format svg', {hint: 'Add --format svg, or redirect stdout.'})
    }
    const model = loadModelSpec(flags.model)
    let result = inspectLayout({
      model,
      prefillTp: flags.tp,
      decodeTp: flags['decode-tp'] ?? flags.tp,
      blockSize: flags['block-size'],
      kvCacheDtype: flagDtypeChoice('kv-cache-dtype', flags['kv-cache-dtype']),
      mambaConvDtype: flagDtypeChoice('mamba-cache-dtype', flags['mamba-cache-dtype']),
      mambaSsmDtype: flagDtypeChoice('mamba-ssm-dtype', flags['mamba-ssm-dtype']),
      attentionBackend: flags['attention-backend'] as AttentionBackend,
      convLayout: flags['conv-layout'] as ConvLayout,
      kernelBlockSize: flags['kernel-block-size'],
      decode: decodeSide(flags),
      vllmVersion: flags['vllm-version'],
      promptTokens: flags['prompt-tokens'],
      cachedTokens: flags['cached-tokens'],
      descriptors: flags.descriptors,
    })
    // The renderers load only when their output is wanted (keeps `--json` start-up lean).
    if (flags.format === 'svg') {
      const {renderInspectSvg} = await import('../layout/present/svg.js')
      const svg = renderInspectSvg(result)
      if (flags.output === undefined) {
        if (this.jsonEnabled()) return {...result, svg}
        process.stdout.write(svg)
        return result
      }
      writeSvg(flags.output, svg)
      result = {...result, svgPath: flags.output}
      this.info(`svg written to ${flags.output}`)
      return result
    }
    if (!this.jsonEnabled()) {
      const {renderInspectTable} = await import('../layout/present/table.js')
      this.print(renderInspectTable(result))
    }
    return result
  }
}

/** The --decode-* flags that were given; the others fall back to the shared (prefill) ones in planLayout. */
function decodeSide(flags: {readonly [flag: string]: unknown}): DecodeSideOptions {
  const out: {-readonly [K in keyof DecodeSideOptions]: DecodeSideOptions[K]} = {}
  const given = (flag: string): string | number | undefined => flags[flag] as string | number | undefined
  if (given('decode-model') !== undefined) out.model = loadModelSpec(String(given('decode-model')))
  if (given('decode-block-size') !== undefined) out.blockSize = Number(given('decode-block-size'))
  if (given('decode-kernel-block-size') !== undefined) out.kernelBlockSize = Number(given('decode-kernel-block-size'))
  if (given('decode-conv-layout') !== undefined) out.convLayout = given('decode-conv-layout') as ConvLayout
  if (given('decode-kv-cache-dtype') !== undefined) out.kvCacheDtype = flagDtypeChoice('decode-kv-cache-dtype', String(given('decode-kv-cache-dtype')))
  if (given('decode-mamba-cache-dtype') !== undefined) out.mambaConvDtype = flagDtypeChoice('decode-mamba-cache-dtype', String(given('decode-mamba-cache-dtype')))
  if (given('decode-mamba-ssm-dtype') !== undefined) out.mambaSsmDtype = flagDtypeChoice('decode-mamba-ssm-dtype', String(given('decode-mamba-ssm-dtype')))
  return out
}

function writeSvg(path: string, svg: string): void {
  try {
    writeFileSync(path, svg)
  } catch (error) {
    throw new UsageError('HPD_USAGE_OUTPUT_UNWRITABLE', `cannot write --output ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      hint: 'Choose a writable path.',
      cause: error,
    })
  }
}
