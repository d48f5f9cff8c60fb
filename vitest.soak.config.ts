import { defineConfig } from "vitest/config"

/**
 * The soak suites (`npm run soak`): crashes, database and object-store
 * faults, hostile input. Not part of `npm test`: they kill processes and
 * restart the shared PostgreSQL and MariaDB servers, which would break
 * suites running beside them. One file at a time.
 */
export default defineConfig({
  test: {
    include: ["test/soak/**/*.soak.ts"],
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 400_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: "forks",
    poolOptions: { forks: { singleFork: true } },
    reporters: ["default"]
  }
})
