import {Flags} from '@oclif/core'

import {HpdCommand} from '../cli/hpd-command.js'
import {enginePresetList} from '../model/index.js'
import {DEFAULT_STEP_OPTIONS} from '../engine/step-scheduler.js'
import {workerUntilSignal, type WorkerResult} from '../serve/worker-session.js'

export default class Worker extends HpdCommand<WorkerResult> {
  static override summary = 'Run one prefill, decode or colocated worker as a standalone process (on any host), registered in etcd'
  static override description =
    'What `hpd serve` launches locally, as its own process: the engine, its control server and transfer agent on --listen, registered under /hpd/<cluster>/workers/<role>/<name> in etcd (--etcd) with a kept-alive lease, so `hpd serve --etcd … --no-local-workers` routes to it and decode workers pull from it. Needs the cluster token (--auth-token-file or HPD_AUTH_TOKEN). Stops cleanly on Ctrl-C or SIGTERM.'
  static override examples = [
    'HPD_AUTH_TOKEN=$(cat token) <%= config.bin %> worker --role prefill --listen 10.0.0.11:8101 --etcd http://10.0.0.5:2379 --cluster demo',
    '<%= config.bin %> worker --role decode --tp 2 --listen 10.0.0.12:8102 --etcd http://10.0.0.5:2379 --cluster demo --auth-token-file token',
  ]
  static override flags = {
    role: Flags.string({description: 'what this worker does', options: ['prefill', 'decode', 'colocated'], required: true, env: 'HPD_ROLE'}),
    model: Flags.string({description: `tiny preset (${enginePresetList()}) or model directory`, default: 'tiny-hybrid', env: 'HPD_MODEL'}),
    tp: Flags.integer({description: 'tensor-parallel ranks of this worker', default: 1, env: 'HPD_TP'}),
    name: Flags.string({description: 'engine id, unique in the cluster (default: <role>-<hostname>-<port>)', env: 'HPD_NAME'}),
    listen: Flags.string({description: 'HOST:PORT the control server and the transfer agent listen on', default: '127.0.0.1:0', env: 'HPD_LISTEN'}),
    advertise: Flags.string({description: 'HOST:PORT other hosts reach this worker at (default: --listen)', env: 'HPD_ADVERTISE'}),
    etcd: Flags.string({description: 'etcd endpoints (URL[,URL…]) to register in', env: 'HPD_ETCD'}),
    cluster: Flags.string({description: 'cluster name (the etcd key prefix /hpd/<cluster>/)', default: 'default', env: 'HPD_CLUSTER'}),
    transport: Flags.string({description: 'KV transfer transport', options: ['auto', 'shm', 'tcp'], default: 'auto', env: 'HPD_TRANSPORT'}),
    'lease-ms': Flags.integer({description: 'how long a prefill worker holds a request’s blocks for the decode side', default: 30_000, env: 'HPD_LEASE_MS'}),
    'max-batch': Flags.integer({description: 'most requests one decode step runs together', default: 64, env: 'HPD_MAX_BATCH'}),
    'kv-blocks': Flags.integer({description: 'KV pool blocks per rank (default: the engine’s)', env: 'HPD_KV_BLOCKS'}),
    'request-timeout-ms': Flags.integer({description: 'the routers’ request bound (caps how long a lease may be extended)', default: 120_000, env: 'HPD_REQUEST_TIMEOUT_MS'}),
    'auth-token-file': Flags.string({description: 'file holding the cluster token (or set HPD_AUTH_TOKEN)'}),
    'api-key-file': Flags.string({description: 'file holding the API key unsigned clients (vLLM’s proxy, llm-d) must send on /v1/* (or set HPD_API_KEY)'}),
    'open-api': Flags.boolean({description: 'serve the OpenAI routes to unsigned clients without a key, as a plain vLLM server (a network you trust)', default: false}),
    'kv-load-failure-policy': Flags.string({description: 'a decode leg whose KV pull fails: fail the request, or recompute the prompt here', options: ['fail', 'recompute'], default: 'fail', env: 'HPD_KV_LOAD_FAILURE_POLICY'}),
    insecure: Flags.boolean({description: 'run without the cluster token (unauthenticated control plane), knowingly', default: false}),
    'verify-transfers': Flags.boolean({description: 'decode/colocated: digest both sides of every KV transfer; a mismatch fails that request (never served)', default: false, env: 'HPD_VERIFY_TRANSFERS'}),
    'prefix-caching': Flags.boolean({description: 'prefix caching (vLLM V1’s default); --no-prefix-caching turns it off', default: true, allowNo: true, env: 'HPD_PREFIX_CACHING'}),
    'mamba-checkpoint-every': Flags.integer({description: 'hybrids with prefix caching: keep a Mamba checkpoint at every k-th logical-block boundary (plus each request’s latest)', default: 1, env: 'HPD_MAMBA_CHECKPOINT_EVERY'}),
    'served-model-name': Flags.string({description: 'name clients pass as `model` on this worker’s OpenAI routes (repeatable; a response carries the name its request used; the model’s own name is accepted too: hpd’s router sends it)', multiple: true, env: 'HPD_SERVED_MODEL_NAME'}),
    'max-num-batched-tokens': Flags.integer({description: 'chunked prefill: most tokens one engine step computes, decode tokens included', default: DEFAULT_STEP_OPTIONS.maxStepTokens, env: 'HPD_MAX_NUM_BATCHED_TOKENS'}),
    'long-prefill-tokens': Flags.integer({description: 'chunked prefill: a prompt with more tokens left advances at most this many per step (smaller: other requests wait less behind it)', default: DEFAULT_STEP_OPTIONS.longPrefillTokens, env: 'HPD_LONG_PREFILL_TOKENS'}),
    'kv-events-endpoint': Flags.string({description: 'where to publish KV events (vLLM’s KVEventBatch over ZeroMQ PUB): tcp://HOST:PORT, PORT * for any free one (default: tcp://<--listen host>:*); "none" publishes nothing', env: 'HPD_KV_EVENTS_ENDPOINT'}),
    'kv-events-plain': Flags.boolean({description: 'publish KV events unencrypted, as vLLM does, for llm-d / Dynamo / vLLM subscribers (they carry every prompt\'s token ids: only on a network trusted with prompts); default: encrypted (CurveZMQ) with keys from the cluster token, which hpd\'s router holds', default: false}),
  }

  async run(): Promise<WorkerResult> {
    const {flags} = await this.parse(Worker)
    const log = (event: string, fields: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({t: new Date().toISOString(), event, ...fields})}\n`)
    const result = await workerUntilSignal(
      {
        role: flags.role as WorkerResult['role'],
        model: flags.model,
        tp: flags.tp,
        name: flags.name,
        listen: flags.listen,
        advertise: flags.advertise,
        etcd: flags.etcd,
        cluster: flags.cluster,
        transport: flags.transport as 'auto' | 'shm' | 'tcp',
        leaseMs: flags['lease-ms'],
        maxBatch: flags['max-batch'],
        kvBlocks: flags['kv-blocks'],
        requestTimeoutMs: flags['request-timeout-ms'],
        authTokenFile: flags['auth-token-file'],
        apiKeyFile: flags['api-key-file'],
        openApi: flags['open-api'],
        kvLoadFailurePolicy: flags['kv-load-failure-policy'] as 'fail' | 'recompute',
        insecure: flags.insecure,
        verifyTransfers: flags['verify-transfers'],
        prefixCaching: flags['prefix-caching'],
        mambaCheckpointEvery: flags['mamba-checkpoint-every'],
        kvEventsEndpoint: flags['kv-events-endpoint'],
        kvEventsPlain: flags['kv-events-plain'],
        servedModelNames: flags['served-model-name'],
        steps: {maxStepTokens: flags['max-num-batched-tokens'], longPrefillTokens: flags['long-prefill-tokens']},
      },
      log,
      (ready) => log('ready', {...ready, role: flags.role}),
    )
    this.print(`stopped by ${result.stoppedBy} after ${result.uptimeS.toFixed(0)} s`)
    return result
  }
}
