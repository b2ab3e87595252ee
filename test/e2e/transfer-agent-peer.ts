// A peer process for test/e2e/transfer-agent.test.ts: one TransferAgent driven over the Node IPC
// channel. Started with `node --import tsx`, so it runs the TypeScript sources, not dist/.
import {TransferAgent, fillPattern} from '../../src/transport/index.js'

interface Command {
  readonly op: string
  readonly [key: string]: unknown
}

const transport = (process.env.PEER_TRANSPORT ?? 'auto') as 'auto' | 'shm' | 'tcp'
const tcpSegmentBytes = process.env.PEER_TCP_SEGMENT_BYTES === undefined ? undefined : Number(process.env.PEER_TCP_SEGMENT_BYTES)
const regionBytes = Number(process.env.PEER_REGION_BYTES ?? 1 << 20)
const agent = TransferAgent.create({name: process.env.PEER_NAME ?? 'peer', transport, tcpSegmentBytes})

const region = process.env.PEER_REGISTER === '1' ? agent.registerMemory(new ArrayBuffer(regionBytes)) : agent.allocRegion(regionBytes)
// The whole region is one pattern part: engine 9, request 1, rank 0, tensor region.id, block 0, part 0.
await fillPattern(region.buffer, [{offsetBytes: 0, sizeBytes: regionBytes, key: {engine: 9, request: 1, rank: 0, tensor: region.id, block: 0, part: 0}, partOffsetBytes: 0}])

const send = (m: unknown): void => {
  process.send?.(m)
}
agent.onNotification((n) => send({event: 'notification', peerName: n.peerName, text: new TextDecoder().decode(n.payload)}))

let peer: ReturnType<TransferAgent['connect']> | undefined
process.on('message', async (raw) => {
  const cmd = raw as Command
  try {
    if (cmd.op === 'connect') {
      peer = agent.connect(Buffer.from(cmd.metadata as string, 'base64'))
      send({reply: 'connect', peer})
    } else if (cmd.op === 'notify') {
      await agent.notify(peer!, String(cmd.text), {timeoutMs: 5000})
      send({reply: 'notify'})
    } else if (cmd.op === 'read-forever') {
      // Be the reader: pull the given owner's region again and again (until killed).
      const owner = agent.connect(Buffer.from(cmd.metadata as string, 'base64'))
      const bytes = Number(cmd.sizeBytes)
      const l = agent.prepareLocal([{region: region.id, offsetBytes: 0, sizeBytes: bytes}])
      const r = agent.prepareRemote(owner, [{region: Number(cmd.region), offsetBytes: 0, sizeBytes: bytes}])
      for (let i = 0; ; i++) {
        await agent.read(l, [0], r, [0], {timeoutMs: Number(cmd.timeoutMs)})
        if (i === 0) send({reply: 'reading'})
      }
    } else if (cmd.op === 'free') {
      agent.freeRegion(region)
      send({reply: 'free'})
    } else if (cmd.op === 'exit') {
      agent.close()
      process.exit(0)
    }
  } catch (error) {
    send({reply: cmd.op, error: {code: (error as {code?: string}).code, message: (error as Error).message}})
  }
})
send({ready: true, metadata: Buffer.from(agent.metadata()).toString('base64'), region: {id: region.id, sizeBytes: region.sizeBytes, allocated: region.allocated}})
// Exit with the parent: never outlive the test.
process.on('disconnect', () => process.exit(0))
