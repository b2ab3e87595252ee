#!/usr/bin/env node
// Ink commands load React's production build (the development build is ~2x slower to import).
process.env.NODE_ENV ??= 'production'
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
