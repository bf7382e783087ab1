export * from "./hwloc.js";
export * from "./nccl.js";
