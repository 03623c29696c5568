/** Vitest global setup: one real `oddstream dev` for the whole run (see scripts/oddstreamDev.mjs). */

import type { TestProject } from "vitest/node";
import { startDev, type DevSystem } from "../scripts/oddstreamDev.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    gateway: DevSystem;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // 200 events/s: about 140 odds updates a second, more than a screen has frames.
  const dev = await startDev({ rate: 200 });
  const { process: _child, stop: _stop, ...system } = dev;
  project.provide("gateway", system);
  return () => dev.stop();
}
