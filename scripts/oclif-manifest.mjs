// Writes oclif.manifest.json after a build, as `oclif manifest` would for a packed CLI. With it,
// oclif imports only the command being run instead of every command (serve's Ink/React alone
// costs about a second), which keeps `hpd inspect-layout` and `hpd doctor` start-up small.
import {rmSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {Config} from '@oclif/core'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// oclif would read a manifest already there instead of the commands: a new command would be missed.
rmSync(join(root, 'oclif.manifest.json'), {force: true})
const config = await Config.load(root)
const plugin = config.getPluginsList().find((p) => p.isRoot)
writeFileSync(join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest))
console.error(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`)
