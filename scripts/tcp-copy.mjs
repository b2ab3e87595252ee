#!/usr/bin/env node
// A plain TCP copy of N bytes, the baseline `npm run bench:cross-host` sets hpd's cross-host
// transfer against (same two hosts, same bytes per request, same run).
//   tcp-copy.mjs serve HOST PORT BYTES        answers each 1-byte request with BYTES bytes, forever
//   tcp-copy.mjs fetch HOST PORT BYTES COUNT  one warm-up + COUNT requests, each timed from the
//                                             request to the last byte landed in a destination
//                                             buffer; prints {gbPerSecond, bestGbPerSecond, p50Ms}
import {createConnection, createServer} from 'node:net'

const [mode, host, portText, bytesText, countText] = process.argv.slice(2)
const port = Number(portText)
const bytes = Number(bytesText)
if (!['serve', 'fetch'].includes(mode) || !host || !(port > 0) || !(bytes > 0)) {
  console.error('usage: tcp-copy.mjs serve HOST PORT BYTES | fetch HOST PORT BYTES COUNT')
  process.exit(2)
}

if (mode === 'serve') {
  const payload = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i += 4096) payload[i] = i & 0xff
  createServer((socket) => {
    socket.setNoDelay(true)
    socket.on('data', (d) => {
      for (let i = 0; i < d.length; i++) socket.write(payload)
    })
    socket.on('error', () => undefined)
  }).listen(port, host, () => console.log(JSON.stringify({listening: `${host}:${port}`})))
} else {
  const count = Number(countText ?? 8)
  const dest = Buffer.alloc(bytes)
  const socket = createConnection({host, port}, async () => {
    socket.setNoDelay(true)
    const times = []
    for (let r = 0; r <= count; r++) {
      const t0 = performance.now()
      await new Promise((resolve) => {
        let got = 0
        const onData = (chunk) => {
          chunk.copy(dest, got)
          got += chunk.length
          if (got >= bytes) {
            socket.off('data', onData)
            resolve()
          }
        }
        socket.on('data', onData)
        socket.write(Buffer.from([1]))
      })
      if (r > 0) times.push(performance.now() - t0)
    }
    socket.destroy()
    const sorted = [...times].sort((a, b) => a - b)
    const total = times.reduce((a, b) => a + b, 0)
    console.log(JSON.stringify({bytes, requests: count, gbPerSecond: (bytes * count) / total / 1e6, bestGbPerSecond: bytes / sorted[0] / 1e6, p50Ms: sorted[Math.floor((sorted.length - 1) / 2)]}))
  })
  socket.on('error', (e) => {
    console.error(e.message)
    process.exit(1)
  })
}
