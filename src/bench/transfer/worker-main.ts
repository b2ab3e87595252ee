// Entry of a bench worker process (spawned by orchestrator.ts with an IPC channel). Answers one
// message at a time; any failure goes back as a typed error message, never a stack trace.
import {DecodeWorker} from './decode-worker.js'
import {PrefillWorker} from './prefill-worker.js'
import {type FromWorker, serializeError, type ToWorker} from './protocol.js'

const send = (m: FromWorker): void => {
  if (process.connected) process.send?.(m)
}
let worker: PrefillWorker | DecodeWorker | undefined
let queue: Promise<void> = Promise.resolve()

async function handle(m: ToWorker): Promise<FromWorker | undefined> {
  switch (m.type) {
    case 'init':
      worker = m.role === 'prefill' ? new PrefillWorker(m.options, send) : new DecodeWorker(m.options, send)
      return worker.init()
    case 'connect':
      return worker!.connect(m.peers)
    case 'fill':
      return (worker as PrefillWorker).fill(m.caseIndex, m.request, m.digests)
    case 'read':
      return (worker as DecodeWorker).read(m.caseIndex, m.request, m.digests, m.grants)
    case 'close':
      worker?.close()
      process.exit(0)
  }
}

process.on('message', (raw) => {
  queue = queue.then(async () => {
    try {
      const reply = await handle(raw as ToWorker)
      if (reply) send(reply)
    } catch (error) {
      send({type: 'error', error: serializeError(error)})
    }
  })
})
// Never outlive the orchestrator.
process.on('disconnect', () => {
  worker?.close()
  process.exit(0)
})
