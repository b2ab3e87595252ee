// Closing an agent while a verification kernel still runs over one of its regions must not crash
// the process: the kernel marks its memory busy and close() waits (bounded) before unmapping.
// Without that, close() right after digest() of a 512 MiB region died with SIGSEGV every time.
import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

const TRANSPORT = new URL('../../dist/transport/index.js', import.meta.url).href

const script = (transport: string): string => `
import {TransferAgent, digestRanges} from '${TRANSPORT}'
const agent = TransferAgent.create({name: 'teardown', transport: '${transport}'})
const region = agent.allocRegion(512 << 20)
new Uint8Array(region.buffer).fill(7)
const pending = digestRanges(region.buffer, [{offsetBytes: 0, sizeBytes: 512 << 20}])
agent.close()
const digests = await pending
console.log('digests', digests.length)
`

describe('agent teardown while a kernel runs', () => {
  it.each(['auto', 'tcp'])('close() during a digest over the region (%s) waits instead of crashing', async (transport) => {
    const r = await execa('node', ['--input-type=module', '-e', script(transport)], {reject: false, timeout: 60_000})
    expect(r.signal).toBeUndefined()
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain('digests 1')
  })
})
