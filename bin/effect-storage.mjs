#!/usr/bin/env node
// The `effect-storage` executable. The package ships TypeScript sources, so
// this loads them through tsx (a development dependency of this package).
import { register } from "tsx/esm/api"

register()
await import("../src/cli/main.ts")
