export * from "./device.js";
export * from "./diagnostics.js";
export * from "./errno.js";
export * from "./errors.js";
export * from "./fault-inject.js";
export * from "./file.js";
export * from "./hex.js";
