// Entry of a bench worker process (spawned by orchestrator.ts through the child-process kit,
// src/child): `--role prefill|decode --options <json>`. Its ready line carries the engine's KV-link
// handshake; then it answers one IPC message at a time; any failure goes back as a typed error
// message, never a stack trace. It exits when the orchestrator goes (the kit's lifeline).
import {errorToJson, onParentMessage, runChild, sendToParent} from '../../child/index.js'
import {WorkerSession} from './worker-session.js'
import type {BenchTransferOptions} from './types.js'
import type {FromWorker, ToWorker, WorkerReady, WorkerRole} from './protocol.js'

const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1]
const role = arg('--role') as WorkerRole
const options = JSON.parse(arg('--options')) as BenchTransferOptions
const send = (m: FromWorker): void => sendToParent(m)

let session: WorkerSession | undefined
runChild<WorkerReady>({
  async start() {
    session = new WorkerSession(role, options, send)
    const ready = session.init()
    onParentMessage((m) => {
      session!.handle(m as ToWorker).then(
        (reply) => reply && send(reply),
        (error: unknown) => send({type: 'error', error: errorToJson(error)}),
      )
    })
    return ready
  },
  stop: () => session?.close(),
})
