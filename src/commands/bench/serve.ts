import {Flags} from '@oclif/core'

import {runServeBench, type ServeBenchResult} from '../../bench/serve-bench.js'
import {HpdCommand} from '../../cli/hpd-command.js'
import {DEFAULT_STEP_OPTIONS} from '../../engine/step-scheduler.js'
import {UsageError} from '../../errors.js'
import {API_KEY_ENV} from '../../serve/auth.js'
import {readSecret} from '../../serve/secrets.js'
import {serveBenchText, showServeBench} from '../../ui/serve-bench-render.js'

export default class BenchServe extends HpdCommand<ServeBenchResult> {
  static override summary = 'Load-test an OpenAI-compatible server: throughput, TTFT, TPOT, ITL, E2E latency'
  static override examples = [
    '<%= config.bin %> bench serve --spawn',
    '<%= config.bin %> bench serve --compare-colocated --concurrency 8 --requests 64',
    '<%= config.bin %> bench serve --url http://127.0.0.1:8000 --concurrency 32 --requests 256',
    '<%= config.bin %> bench serve --compare-colocated --compare-prefix-caching --prompt-tokens 4096 --shared-prefix-tokens 3686 --concurrency 1 --requests 16',
  ]
  static override flags = {
    url: Flags.string({description: 'server to load (default with neither --url nor --spawn: --spawn)', env: 'HPD_BENCH_URL'}),
    spawn: Flags.boolean({description: 'start an `hpd serve` for the run and stop it after', default: false}),
    'compare-colocated': Flags.boolean({description: 'run the same load against a disaggregated and a --colocated server, side by side', default: false}),
    model: Flags.string({description: 'model for spawned servers', default: 'tiny-hybrid'}),
    'prefill-tp': Flags.integer({default: 1, description: 'prefill TP of spawned servers'}),
    'decode-tp': Flags.integer({default: 1, description: 'decode TP of spawned servers'}),
    'prefill-workers': Flags.integer({default: 1, description: 'prefill workers of spawned servers'}),
    'decode-workers': Flags.integer({default: 1, description: 'decode (or colocated) workers of spawned servers'}),
    concurrency: Flags.integer({default: 8, description: 'requests in flight at once'}),
    requests: Flags.integer({default: 64, description: 'requests in total'}),
    'prompt-tokens': Flags.integer({default: 128, description: 'prompt length of every request (tokens)'}),
    'output-tokens': Flags.integer({default: 32, description: 'output length of every request (tokens, EOS ignored)'}),
    seed: Flags.integer({default: 0, description: 'seed of the random prompts (same prompts for every run)'}),
    'long-prompt-tokens': Flags.integer({description: 'head-of-line mode: run the load idle, then again with one request of this many prompt tokens kept in flight; compare median TTFT'}),
    'max-num-batched-tokens': Flags.integer({description: 'chunked prefill of spawned servers: most tokens per engine step'}),
    'long-prefill-tokens': Flags.integer({description: 'chunked prefill of spawned servers: per-step chunk of a long prompt'}),
    'shared-prefix-tokens': Flags.integer({description: 'prefix repetition (as vllm bench serve): every prompt starts with a shared prefix of this many tokens (less than --prompt-tokens); one unmeasured warm-up per prefix'}),
    'num-prefixes': Flags.integer({default: 1, description: 'with --shared-prefix-tokens: distinct shared prefixes (request i uses prefix i mod P)'}),
    'compare-prefix-caching': Flags.boolean({description: 'spawned servers: run the load with --no-prefix-caching, then with prefix caching, and compare median TTFT and KV bytes pulled per request', default: false}),
    'kv-blocks': Flags.integer({description: 'KV pool blocks per worker rank of spawned servers'}),
    'api-key-file': Flags.string({description: 'file holding the API key of the --url server (sent as Authorization: Bearer); or HPD_API_KEY'}),
    tokenizer: Flags.string({description: 'model (preset or directory) whose tokenizer counts generated text when the server returns neither usage nor token ids (default: --model for spawned servers; none for --url)'}),
  }

  async run(): Promise<ServeBenchResult> {
    const {flags} = await this.parse(BenchServe)
    for (const k of ['concurrency', 'requests', 'prompt-tokens', 'output-tokens', 'long-prompt-tokens', 'max-num-batched-tokens', 'long-prefill-tokens', 'shared-prefix-tokens', 'num-prefixes', 'kv-blocks'] as const) {
      if (flags[k] !== undefined && flags[k] < 1) throw new UsageError('HPD_BENCH_BAD_FLAG', `--${k} must be >= 1, got ${flags[k]}`, {hint: `Pass --${k} 1 or more.`})
    }
    if (flags['shared-prefix-tokens'] !== undefined && flags['shared-prefix-tokens'] >= flags['prompt-tokens']) {
      throw new UsageError('HPD_BENCH_BAD_FLAG', `--shared-prefix-tokens ${flags['shared-prefix-tokens']} must be less than --prompt-tokens ${flags['prompt-tokens']}`, {hint: 'Every prompt keeps at least one token of its own.'})
    }
    if (flags['compare-prefix-caching'] && flags.url) {
      throw new UsageError('HPD_BENCH_BAD_FLAG', '--compare-prefix-caching starts its own servers: it cannot take --url', {hint: 'Drop --url (or run the load twice against your own servers).'})
    }
    if (flags.url && flags.spawn) throw new UsageError('HPD_BENCH_BAD_FLAG', '--url and --spawn name two servers: pass one', {hint: 'Drop --spawn to load your server, or --url to load a spawned one.'})
    const apiKey = readSecret({flag: 'api-key-file', file: flags['api-key-file'], envName: API_KEY_ENV})
    const events = runServeBench({
      apiKey,
      url: flags.url,
      spawn: flags.spawn || flags['compare-prefix-caching'] || (!flags.url && !flags['compare-colocated']),
      compareColocated: flags['compare-colocated'],
      model: flags.model,
      prefillTp: flags['prefill-tp'],
      decodeTp: flags['decode-tp'],
      prefillWorkers: flags['prefill-workers'],
      decodeWorkers: flags['decode-workers'],
      concurrency: flags.concurrency,
      requests: flags.requests,
      promptTokens: flags['prompt-tokens'],
      outputTokens: flags['output-tokens'],
      seed: flags.seed,
      longPromptTokens: flags['long-prompt-tokens'],
      sharedPrefixTokens: flags['shared-prefix-tokens'],
      numPrefixes: flags['num-prefixes'],
      comparePrefixCaching: flags['compare-prefix-caching'],
      kvBlocks: flags['kv-blocks'],
      tokenizer: flags.tokenizer,
      steps:
        flags['max-num-batched-tokens'] === undefined && flags['long-prefill-tokens'] === undefined
          ? undefined
          : {maxStepTokens: flags['max-num-batched-tokens'] ?? DEFAULT_STEP_OPTIONS.maxStepTokens, longPrefillTokens: flags['long-prefill-tokens'] ?? DEFAULT_STEP_OPTIONS.longPrefillTokens},
    })
    const result = await showServeBench(events, this.jsonEnabled())
    this.print(serveBenchText(result))
    if (result.runs.some((r) => r.failed > 0)) this.addWarning(`${result.runs.reduce((a, r) => a + r.failed, 0)} requests failed (see the failure lines)`)
    return result
  }
}
