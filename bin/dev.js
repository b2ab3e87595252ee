#!/usr/bin/env -S node --import tsx
process.env.UCX_HANDLE_ERRORS ??= 'none'
import {execute} from '@oclif/core'

await execute({development: true, dir: import.meta.url})
