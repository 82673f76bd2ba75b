// Public surface of the KMS layer.
export type * from './types.js';
export { DrmDevice, isNotDrmDevice } from './device.js';
export type { DrmOpenOptions, DrmDeviceEvents, PropertyBlob, DumbFramebuffer } from './device.js';
export { AtomicRequest, PropertyIndex, OUT_FENCE, atomicFlagsToString } from './atomic.js';
export type { AtomicValue, KmsObjectKind } from './atomic.js';
export { readSnapshot, toPropertyMap, enumValueName, findCrtc, findPlane, findConnector, planeSupports, planesForCrtc, maskToIndices, groupFormatModifiers } from './snapshot.js';
export { snapshotToJson, snapshotToJsonText, snapshotFromJson, loadSnapshotFile, bigintToHex, hexToBigint } from './snapshot-json.js';
export { packModeInfo, unpackModeInfo, modeSummary, preferredMode, MODE_INFO_SIZE } from './mode.js';
export { captureState, restoreState, buildRestoreRequest, testRestore } from './state.js';
export type { RestoreResult } from './state.js';
export { UeventMonitor, filterDrmUevents, cardNameOf } from './uevents.js';
export type { DrmUevent, UeventOverrun, DrmUeventNotice, UeventMonitorHandlers, UeventApi } from './uevents.js';
export { diffTopology, connectorChange, describeConnectorChange, readConnectorEdids, LINK_STATUS_BAD } from './topology.js';
export type { TopologyDiff, ConnectorChange, ConnectorChangeKind, EdidMap, TopologyDiffOptions } from './topology.js';
export { isMaster, isNotMasterError, MasterWatch, MasterRetrier } from './master.js';
export type { MasterState, MasterEvent, MasterWatchOptions } from './master.js';
