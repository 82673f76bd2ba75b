// `vgpu-flip debugfs`: what is on the host's hardware planes and which guest plane it comes from.
export * from './state.js';
export * from './vgpu.js';
export * from './assignment-state.js';
export * from './join.js';
export * from './collect.js';
export * from './render.js';
