import {DecodeWorker} from './decode-worker.js'
import {PrefillWorker} from './prefill-worker.js'
import type {FromWorker, ToWorker, WorkerReady, WorkerRole} from './protocol.js'
import type {BenchTransferOptions} from './types.js'

/**
 * One bench worker (prefill or decode) answering the orchestrator's messages one at a time, in
 * order, wherever it runs: a child process (worker-main.ts) or, across hosts, the prefill side in
 * the `hpd bench transfer --role prefill` process itself (remote.ts).
 */
export class WorkerSession {
  private readonly worker: PrefillWorker | DecodeWorker
  private queue: Promise<unknown> = Promise.resolve()

  constructor(role: WorkerRole, options: BenchTransferOptions, send: (m: FromWorker) => void) {
    this.worker = role === 'prefill' ? new PrefillWorker(options, send) : new DecodeWorker(options, send)
  }

  init(): WorkerReady {
    return this.worker.init()
  }

  /** Answers `m` after every earlier message was answered; 'close' answers nothing. */
  handle(m: ToWorker): Promise<FromWorker | undefined> {
    const next = this.queue.then(() => this.answer(m))
    this.queue = next.catch(() => undefined)
    return next
  }

  close(): void {
    this.worker.close()
  }

  private async answer(m: ToWorker): Promise<FromWorker | undefined> {
    switch (m.type) {
      case 'connect':
        return this.worker.connect(m.peer)
      case 'fill':
        return (this.worker as PrefillWorker).fill(m.caseIndex, m.request, m.digests)
      case 'read':
        return (this.worker as DecodeWorker).read(m.caseIndex, m.request, m.grants, m.prefillBlockIds, m.digests)
      case 'close':
        return undefined
    }
  }
}
