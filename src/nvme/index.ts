/** NVMe controller model (registers, doorbells, CMB, admin and NVM commands) and a minimal host driver. */
export * from "./commands.js";
export * from "./controller.js";
export * from "./events.js";
export * from "./host.js";
export * from "./regs.js";
