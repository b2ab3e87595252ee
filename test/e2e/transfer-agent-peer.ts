// A peer process for test/e2e/transfer-agent.test.ts: one TransferAgent driven over the Node IPC
// channel. Started with `node --import tsx`, so it runs the TypeScript sources, not dist/.
import {TransferAgent, fillPattern, verifyPattern} from '../../src/transport/index.js'

interface Command {
  readonly op: string
  readonly [key: string]: unknown
}

const transport = (process.env.PEER_TRANSPORT ?? 'auto') as 'auto' | 'shm' | 'tcp'
const tcpSegmentBytes = process.env.PEER_TCP_SEGMENT_BYTES === undefined ? undefined : Number(process.env.PEER_TCP_SEGMENT_BYTES)
const regionBytes = Number(process.env.PEER_REGION_BYTES ?? 1 << 20)
const servedReadsRequireGrant = process.env.PEER_REQUIRE_GRANT !== '0'
const bindAddress = process.env.PEER_BIND_ADDRESS
const agent = TransferAgent.create({name: process.env.PEER_NAME ?? 'peer', transport, tcpSegmentBytes, servedReadsRequireGrant, ...(bindAddress ? {bindAddress} : {})})

const region = process.env.PEER_REGISTER === '1' ? agent.registerMemory(new ArrayBuffer(regionBytes)) : agent.allocRegion(regionBytes)
// The whole region is one pattern part: engine 9, request 1, rank 0, tensor region.id, block 0, part 0.
await fillPattern(region.buffer, [{offsetBytes: 0, sizeBytes: regionBytes, key: {engine: 9, request: 1, rank: 0, tensor: region.id, block: 0, part: 0}, partOffsetBytes: 0}])

// What a serving owner does per request, here for the whole region: readers pass it with their reads.
const grant = agent.grant([{region, offsetBytes: 0, sizeBytes: regionBytes}])

const send = (m: unknown): void => {
  process.send?.(m)
}
agent.onNotification((n) => send({event: 'notification', peerName: n.peerName, text: new TextDecoder().decode(n.payload)}))

let peer: ReturnType<TransferAgent['connect']> | undefined
const owners = new Map<string, ReturnType<TransferAgent['connect']>>()
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
        await agent.read(l, [0], r, [0], {timeoutMs: Number(cmd.timeoutMs), ...(cmd.grant ? {grant: String(cmd.grant)} : {})})
        if (i === 0) send({reply: 'reading'})
      }
    } else if (cmd.op === 'read-once') {
      // Be the reader once: [offsetBytes, +sizeBytes) of the owner's region into the start of ours,
      // which is first filled with 0x5a so a refused read can prove it wrote nothing.
      const metadata = String(cmd.metadata)
      let owner = owners.get(metadata)
      if (!owner) owners.set(metadata, (owner = agent.connect(Buffer.from(metadata, 'base64'))))
      const offsetBytes = Number(cmd.offsetBytes)
      const sizeBytes = Number(cmd.sizeBytes)
      const local = new Uint8Array(region.buffer, 0, sizeBytes)
      local.fill(0x5a)
      const l = agent.prepareLocal([{region: region.id, offsetBytes: 0, sizeBytes}])
      const r = agent.prepareRemote(owner, [{region: Number(cmd.region), offsetBytes, sizeBytes}])
      // watchFirstPiece: tell the parent as soon as the first chunk's tail bytes have arrived.
      const chunkBytes = Number(cmd.chunkBytes ?? sizeBytes)
      const tail = local.subarray(Math.max(0, chunkBytes - 16), chunkBytes)
      const watch = cmd.watchFirstPiece
        ? setInterval(() => {
            if (tail.some((b) => b !== 0x5a)) {
              clearInterval(watch)
              send({event: 'first-piece'})
            }
          }, 1)
        : undefined
      try {
        const result = await agent.read(l, [0], r, [0], {timeoutMs: Number(cmd.timeoutMs ?? 10_000), ...(cmd.grant ? {grant: String(cmd.grant)} : {})})
        // The owner filled its region with the pattern of (engine 9, request 1, tensor = its region id).
        const key = {engine: 9, request: 1, rank: 0, tensor: Number(cmd.region), block: 0, part: 0}
        const mismatch = await verifyPattern(region.buffer, [{offsetBytes: 0, sizeBytes, key, partOffsetBytes: offsetBytes}])
        send({reply: 'read-once', bytes: result.bytes, mismatch})
      } catch (error) {
        // Per chunk (pieces of a served read): still all 0x5a, the owner's bytes, or anything else.
        const key = {engine: 9, request: 1, rank: 0, tensor: Number(cmd.region), block: 0, part: 0}
        const chunks: ('untouched' | 'delivered' | 'other')[] = []
        for (let off = 0; off < sizeBytes; off += chunkBytes) {
          const n = Math.min(chunkBytes, sizeBytes - off)
          if (local.subarray(off, off + n).every((b) => b === 0x5a)) chunks.push('untouched')
          else if ((await verifyPattern(region.buffer, [{offsetBytes: off, sizeBytes: n, key, partOffsetBytes: offsetBytes + off}])) === null) chunks.push('delivered')
          else chunks.push('other')
        }
        send({reply: 'read-once', error: {code: (error as {code?: string}).code, message: (error as Error).message}, untouched: local.every((b) => b === 0x5a), chunks})
      } finally {
        clearInterval(watch)
        agent.releaseList(l)
        agent.releaseList(r)
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
send({ready: true, pid: process.pid, metadata: Buffer.from(agent.metadata()).toString('base64'), grant: grant.id, region: {id: region.id, sizeBytes: region.sizeBytes, allocated: region.allocated}})
// Exit with the parent: never outlive the test.
process.on('disconnect', () => process.exit(0))
