/**
 * PCIe TLP codec (tph-and-tlp.md §6–§11): non-flit and flit-mode headers, TPH, the three textual
 * forms, NFM ↔ FM translation, and a bulk scanner for traces. Pure: no I/O.
 */
export * from "./build.js";
export * from "./decode.js";
export * from "./encode.js";
export * from "./errors.js";
export * from "./render.js";
export * from "./scan.js";
export {
  CPL_STATUS,
  FM_TYPES,
  formatRid,
  HV_NAME,
  impliedBe,
  NFM_TYPES,
  PH_NAME,
  type TlpTypeInfo,
} from "./tables.js";
export * from "./text.js";
export * from "./translate.js";
export * from "./types.js";
