export {buildInspectResult, inspectLayout, engineSummary, type DescriptorTables, type EngineSummary, type InspectLayoutResult, type RankSummary, type TransferSummary} from './inspect-result.js'
export {renderInspectTable} from './table.js'
export {renderInspectSvg} from './svg.js'
