/** The KV link: how one engine's cache reaches another's. See README.md. */
export {badHandshake, KVLINK_CODES, protocolError, unknownRequest} from './errors.js'
export {LINK_FORMAT, type LinkInfo, type LinkRank, parseLinkInfo} from './handshake.js'
export {LIST_STRATEGIES, type ListStrategy, type Shorten} from './lists.js'
export {FREED_PREFIX, freedMessage, type LinkMessage, parseLinkMessage, READ_DONE_PREFIX, readDoneMessage} from './messages.js'
export {LinkOwner, type LinkOwnerOptions} from './owner.js'
export {DEFAULT_LIST_STRATEGY, LinkReader, type LinkReaderOptions, type PreparedRequest, type ReadResult, RemoteEngine} from './reader.js'
export {RegionTable} from './regions.js'
export {canonicalOrder, compareDigests, decodeDigests, encodeDigests, type PairDigests, readerDigests} from './verify.js'
