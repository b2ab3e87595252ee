/** The child-process kit: spawn, ready handshake, lifeline, HpdError as JSON. See README.md. */
export {onParentMessage, runChild, type RunChildOptions, sendToParent, failChild} from './child.js'
export {asErrorJson, errorFromJson, type ErrorJson, errorToJson} from './error-json.js'
export {type ChildExit, ChildHandle, spawnChild, type SpawnChildOptions} from './spawn.js'
