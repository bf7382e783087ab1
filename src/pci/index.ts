export * from "./bdf.js";
export * from "./capabilities.js";
export * from "./config-space.js";
export * from "./device.js";
export * from "./fabric.js";
export * from "./regs.js";
export * from "./reset.js";
export * from "./tph.js";
