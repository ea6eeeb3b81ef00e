// DigitalOcean's droplet size slugs and their memory in MB, as DigitalOcean's API lists them
// (`GET /v2/sizes`, "memory"), read from the public size list of 2026-12. A slug that is not here
// (one DigitalOcean adds later) can be allowed with chitram:extraSizes.
export const DROPLET_SIZES_DATE = "2026-12";

const basic: Record<string, number> = {
  "s-1vcpu-512mb-10gb": 512,
  "s-1vcpu-1gb": 1024,
  "s-1vcpu-2gb": 2048,
  "s-2vcpu-2gb": 2048,
  "s-2vcpu-4gb": 4096,
  "s-4vcpu-8gb": 8192,
  "s-8vcpu-16gb": 16384,
};

// Premium AMD and Intel variants of the Basic sizes, and their larger-disk Intel variants.
const premium: Record<string, number> = Object.fromEntries(
  (
    [
      ["s-1vcpu-1gb", 1024],
      ["s-1vcpu-2gb", 2048],
      ["s-2vcpu-2gb", 2048],
      ["s-2vcpu-4gb", 4096],
      ["s-4vcpu-8gb", 8192],
      ["s-4vcpu-16gb", 16384],
      ["s-8vcpu-16gb", 16384],
      ["s-8vcpu-32gb", 32768],
    ] as const
  ).flatMap(([slug, mb]) => [
    [`${slug}-amd`, mb],
    [`${slug}-intel`, mb],
  ]),
);
const premiumIntelDisk: Record<string, number> = {
  "s-1vcpu-1gb-35gb-intel": 1024,
  "s-1vcpu-2gb-70gb-intel": 2048,
  "s-2vcpu-2gb-90gb-intel": 2048,
  "s-2vcpu-4gb-120gb-intel": 4096,
  "s-2vcpu-8gb-160gb-intel": 8192,
  "s-4vcpu-8gb-240gb-intel": 8192,
  "s-4vcpu-16gb-320gb-intel": 16384,
  "s-8vcpu-16gb-480gb-intel": 16384,
  "s-8vcpu-32gb-640gb-intel": 32768,
};

// CPU-Optimized: 2 GB per vCPU (c-N), and their Intel and 2x-SSD variants.
const cpuOptimized: Record<string, number> = Object.fromEntries(
  [2, 4, 8, 16, 32, 48].flatMap((n) => [
    [`c-${n}`, n * 2048],
    [`c-${n}-intel`, n * 2048],
    [`c2-${n}vcpu-${n * 2}gb`, n * 2048],
    [`c2-${n}vcpu-${n * 2}gb-intel`, n * 2048],
  ]),
);

// General Purpose (4 GB per vCPU), Memory-Optimized (8 GB per vCPU) and Storage-Optimized.
const perVcpu = (prefixes: string[], gbPerVcpu: number, vcpus: number[]) =>
  Object.fromEntries(
    prefixes.flatMap((prefix) =>
      vcpus.map((n) => [`${prefix}-${n}vcpu-${n * gbPerVcpu}gb`, n * gbPerVcpu * 1024] as const),
    ),
  );
const general = perVcpu(["g", "gd", "g-intel", "gd-intel"], 4, [2, 4, 8, 16, 32, 40]);
const memory = perVcpu(["m", "m3", "m6"], 8, [2, 4, 8, 16, 24, 32]);
const storage = perVcpu(["so", "so1_5"], 8, [2, 4, 8, 16, 24, 32]);

/** Every size slug the stack knows, with its memory in MB. */
export const DROPLET_SIZES: Readonly<Record<string, number>> = {
  ...basic,
  ...premium,
  ...premiumIntelDisk,
  ...cpuOptimized,
  ...general,
  ...memory,
  ...storage,
};

/** The least memory the four services need together (render/compose.ts limits, and the OS). */
export const MIN_MEMORY_MB = 2048;
