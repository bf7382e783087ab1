export * from "./errno.js";
export * from "./errors.js";
export * from "./hex.js";
export * from "./device.js";
