export { collectInspect, inspectDrmDevice, inspectVgpus, inspectExitCode, listCardNodes, errorEntry } from './collect.js';
export type { InspectReport, DrmDeviceReport, VgpuReport, ErrorEntry, InspectOptions } from './collect.js';
export { inspectJson, inspectJsonText, drmDeviceJson, propertyJson, modeJson, vgpuJson } from './json.js';
export { renderInspectText, renderSnapshotText, renderVgpus, planeFormatsSummary } from './text.js';
