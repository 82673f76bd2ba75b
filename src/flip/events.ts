// Typed events of the flip engine (eventemitter3).
import type { KernelErrorFields } from '../binding/types.js';
import type { GuestPlaneKind, Layout } from './planner.js';

export type PresentPath = 'drm_fb' | 'dmabuf' | 'copy';

export interface AssignedEvent {
  layout: Layout;
  /** per guest plane (by kind; several guests: by layer name): how it is presented */
  paths: Partial<Record<string, PresentPath>>;
  /** human explanation of the choice (planner + TEST_ONLY loop) */
  explanation: string[];
  /** the assignment included a modeset */
  modeset: boolean;
  reason: string;
}

/**
 * A frame on screen. On the DRM_FB path the kernel flips; the engine emits one per guest
 * buffer change its watch saw followed (sequence 0, latency 0: no commit of ours involved).
 */
export interface FrameEvent {
  plane: GuestPlaneKind;
  /** the layer (several guests on one output: unique name; else the plane kind) */
  layer?: string;
  /** dmabuf_id (DMABUF), region index (REGION) or framebuffer id (DRM_FB) of the frame shown */
  id: number;
  fbId: number;
  path: PresentPath;
  /** the flip event's vblank sequence (0 for the blocking commit of an assignment) */
  sequence: number;
  /** the flip event's time (CLOCK_MONOTONIC, microseconds; 0 for an assignment) */
  vblankUs: number;
  /** commit -> flip complete, microseconds */
  latencyUs: number;
  /** the same in vblank periods (rounded up, at least 1 for a flip) */
  latencyVblanks: number;
  /** this frame needed a new import (cache miss) */
  imported: boolean;
  bytesCopied: number;
  /** the frame number of the engine (ticks since start) */
  frame: number;
}

export interface NotReadyEvent {
  plane: GuestPlaneKind;
  /** the layer (several guests on one output: unique name; else the plane kind) */
  layer?: string;
  /** what the engine does meanwhile */
  action: 'keep' | 'blank' | 'wait';
}

/** A plane switched between zero copy and copying (per guest buffer: a new buffer is tried zero copy again). */
export interface FallbackEvent {
  plane: GuestPlaneKind;
  /** the layer (several guests on one output: unique name; else the plane kind) */
  layer?: string;
  from: 'dmabuf' | 'copy';
  to: 'copy' | 'dmabuf';
  reason: string;
}

export interface EngineErrorEvent {
  plane?: GuestPlaneKind;
  layer?: string;
  /** what the engine was doing: 'query', 'import', 'commit', 'plan', 'restore', ... */
  stage: string;
  message: string;
  /** ioctl + errno when the kernel said no */
  kernel: KernelErrorFields | null;
  /** failures in a row so far */
  count: number;
  /** false: the engine goes on and retries; true: it stopped */
  fatal: boolean;
}

export interface RecoveredEvent {
  plane?: GuestPlaneKind;
  layer?: string;
  stage: string;
  afterFailures: number;
}

export interface EngineEvents {
  assigned: (e: AssignedEvent) => void;
  frame: (e: FrameEvent) => void;
  'not-ready': (e: NotReadyEvent) => void;
  fallback: (e: FallbackEvent) => void;
  error: (e: EngineErrorEvent) => void;
  recovered: (e: RecoveredEvent) => void;
  stopped: (e: { restored: boolean; message: string }) => void;
  /** a guest went away (its vGPU was removed) and its layers left the output; `empty`: none is left */
  'guest-left': (e: { guest: string; why: string; empty: boolean }) => void;
}
