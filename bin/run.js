#!/usr/bin/env node
// Loading UCX installs crash-signal handlers unless told not to; keep Node's own (ucx-notes.md).
process.env.UCX_HANDLE_ERRORS ??= 'none'
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
