export * from "./device.js";
export * from "./errno.js";
export * from "./errors.js";
export * from "./hex.js";
export * from "./diagnostics.js";
export * from "./fault-inject.js";
