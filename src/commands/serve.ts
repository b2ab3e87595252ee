import {Flags} from '@oclif/core'

import {HpdCommand} from '../cli/hpd-command.js'
import {UsageError} from '../errors.js'
import {DEFAULT_STEP_OPTIONS} from '../engine/step-scheduler.js'
import {enginePresetList} from '../model/index.js'
import {serveUntilSignal, type ServeResult} from '../serve/serve-session.js'
import {presentServe, serveLogSinks, serveLogStyle} from '../ui/serve-render.js'

export default class Serve extends HpdCommand<ServeResult> {
  static override summary = 'Serve a model behind an OpenAI-compatible API with disaggregated prefill/decode workers'
  static override description =
    'Launches prefill and decode worker processes and a router on --host:--port. The decode side pulls the attention KV blocks and Mamba state from the prefill side. Stops cleanly on Ctrl-C or SIGTERM.'
  static override examples = [
    '<%= config.bin %> serve',
    '<%= config.bin %> serve --prefill-tp 2 --decode-tp 1 --decode-workers 2',
    '<%= config.bin %> serve --colocated --port 8001',
    `curl -s localhost:8000/v1/completions -H 'content-type: application/json' -d '{"model":"tiny-hybrid","prompt":"Hello","max_tokens":16}'`,
  ]
  static override flags = {
    model: Flags.string({description: `tiny preset (${enginePresetList()}) or model directory`, default: 'tiny-hybrid', env: 'HPD_MODEL'}),
    'prefill-tp': Flags.integer({description: 'tensor-parallel ranks per prefill worker', default: 1, env: 'HPD_PREFILL_TP'}),
    'decode-tp': Flags.integer({description: 'tensor-parallel ranks per decode worker', default: 1, env: 'HPD_DECODE_TP'}),
    'prefill-workers': Flags.integer({description: 'prefill worker processes', default: 1, env: 'HPD_PREFILL_WORKERS'}),
    'decode-workers': Flags.integer({description: 'decode (or colocated) worker processes', default: 1, env: 'HPD_DECODE_WORKERS'}),
    host: Flags.string({description: 'address the router listens on', default: '127.0.0.1', env: 'HPD_HOST'}),
    port: Flags.integer({description: 'port the router listens on (0: any free port)', default: 8000, env: 'HPD_PORT'}),
    transport: Flags.string({description: 'KV transfer transport', options: ['auto', 'shm', 'tcp'], default: 'auto', env: 'HPD_TRANSPORT'}),
    colocated: Flags.boolean({description: 'no disaggregation: each worker prefills and decodes (the baseline)', default: false, env: 'HPD_COLOCATED'}),
    'json-logs': Flags.boolean({description: 'one JSON object per log line on stderr instead of the dashboard', default: false, env: 'HPD_JSON_LOGS'}),
    'lease-ms': Flags.integer({description: 'how long a prefill worker holds a request’s blocks for the decode side', default: 30_000, env: 'HPD_LEASE_MS'}),
    'max-batch': Flags.integer({description: 'most requests one decode step runs together', default: 64, env: 'HPD_MAX_BATCH'}),
    'kv-blocks': Flags.integer({description: 'KV pool blocks per worker rank (default: the engine’s)', env: 'HPD_KV_BLOCKS'}),
    'request-timeout-ms': Flags.integer({description: 'bound on one request, first byte to last', default: 120_000, env: 'HPD_REQUEST_TIMEOUT_MS'}),
    'prefill-timeout-ms': Flags.integer({description: 'bound on one prefill call (queueing included); past it the next prefill worker is tried', default: 30_000, env: 'HPD_PREFILL_TIMEOUT_MS'}),
    'auth-token-file': Flags.string({description: 'file holding the cluster token workers require (default: a random one; or set HPD_AUTH_TOKEN)'}),
    'api-key-file': Flags.string({description: 'file holding the API key /v1/* requires as `Authorization: Bearer` (or set HPD_API_KEY)'}),
    etcd: Flags.string({description: 'cluster mode: etcd endpoints (URL[,URL…]); workers register there and the router routes over them', env: 'HPD_ETCD'}),
    cluster: Flags.string({description: 'cluster name (the etcd key prefix /hpd/<cluster>/)', default: 'default', env: 'HPD_CLUSTER'}),
    'local-workers': Flags.boolean({description: 'launch local workers (--no-local-workers: the router alone, over workers registered in etcd)', default: true, allowNo: true}),
    insecure: Flags.boolean({description: 'allow a non-loopback cluster without the cluster token (unauthenticated control plane)', default: false}),
    'served-model-name': Flags.string({description: 'name clients pass as `model` (repeatable; a response carries the name its request used; default: the model’s name)', multiple: true, env: 'HPD_SERVED_MODEL_NAME'}),
    'max-num-batched-tokens': Flags.integer({description: 'chunked prefill: most tokens one engine step computes, decode tokens included', default: DEFAULT_STEP_OPTIONS.maxStepTokens, env: 'HPD_MAX_NUM_BATCHED_TOKENS'}),
    'long-prefill-tokens': Flags.integer({description: 'chunked prefill: a prompt with more tokens left advances at most this many per step (smaller: other requests wait less behind it)', default: DEFAULT_STEP_OPTIONS.longPrefillTokens, env: 'HPD_LONG_PREFILL_TOKENS'}),
    'verify-transfers': Flags.boolean({description: 'decode workers digest both sides of every KV transfer; a mismatch fails that request (never served)', default: false, env: 'HPD_VERIFY_TRANSFERS'}),
    'prefix-caching': Flags.boolean({description: 'prefix caching on every worker (vLLM V1’s default; hybrids checkpoint the Mamba state at block boundaries); --no-prefix-caching turns it off', default: true, allowNo: true, env: 'HPD_PREFIX_CACHING'}),
    'mamba-checkpoint-every': Flags.integer({description: 'hybrids with prefix caching: keep a Mamba checkpoint at every k-th logical-block boundary (plus each request’s latest)', default: 1, env: 'HPD_MAMBA_CHECKPOINT_EVERY'}),
    routing: Flags.string({description: 'how the router picks workers: by cached prefix (from the workers’ KV events) balanced against load, or round robin', options: ['prefix', 'round-robin'], env: 'HPD_ROUTING'}),
    'prefix-routing-weight': Flags.string({description: 'prefix routing: weight of the cached-prefix fraction against load, 0..1', default: '0.75', env: 'HPD_PREFIX_ROUTING_WEIGHT'}),
  }

  async run(): Promise<ServeResult> {
    const {flags} = await this.parse(Serve)
    const style = serveLogStyle({jsonLogs: flags['json-logs'], json: this.jsonEnabled()})
    const weight = flags['prefix-routing-weight'].trim() === '' ? Number.NaN : Number(flags['prefix-routing-weight'])
    if (!Number.isFinite(weight)) {
      throw new UsageError('HPD_SERVE_BAD_FLAG', `--prefix-routing-weight must be a number 0..1, got ${JSON.stringify(flags['prefix-routing-weight'].slice(0, 32))}`, {hint: 'Pass --prefix-routing-weight between 0 (load only) and 1 (cached prefix only).', details: {flag: 'prefix-routing-weight'}})
    }
    const result = await serveUntilSignal(
      {
        model: flags.model,
        prefillTp: flags['prefill-tp'],
        decodeTp: flags['decode-tp'],
        prefillWorkers: flags['prefill-workers'],
        decodeWorkers: flags['decode-workers'],
        host: flags.host,
        port: flags.port,
        transport: flags.transport as 'auto' | 'shm' | 'tcp',
        colocated: flags.colocated,
        leaseMs: flags['lease-ms'],
        maxBatch: flags['max-batch'],
        kvBlocks: flags['kv-blocks'],
        requestTimeoutMs: flags['request-timeout-ms'],
        prefillTimeoutMs: flags['prefill-timeout-ms'],
        authTokenFile: flags['auth-token-file'],
        apiKeyFile: flags['api-key-file'],
        etcd: flags.etcd,
        cluster: flags.cluster,
        localWorkers: flags['local-workers'],
        insecure: flags.insecure,
        servedModelNames: flags['served-model-name'],
        steps: {maxStepTokens: flags['max-num-batched-tokens'], longPrefillTokens: flags['long-prefill-tokens']},
        verifyTransfers: flags['verify-transfers'],
        prefixCaching: flags['prefix-caching'],
        mambaCheckpointEvery: flags['mamba-checkpoint-every'],
        // Default: by prefix with prefix caching, round robin without (nothing to score).
        routing: {policy: (flags.routing ?? (flags['prefix-caching'] ? 'prefix' : 'round-robin')) as 'prefix' | 'round-robin', prefixWeight: weight},
      },
      serveLogSinks(style),
      (running) => presentServe(running, style),
    )
    this.print(`stopped by ${result.stoppedBy} after ${result.uptimeS.toFixed(0)} s: ${result.requestsOk} requests served, ${result.requestsFailed} failed`)
    return result
  }
}
