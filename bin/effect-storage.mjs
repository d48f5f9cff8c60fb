#!/usr/bin/env node
// The `effect-storage` executable: the compiled CLI (`npm run build` makes
// dist/ in a checkout; the published package ships it).
import "../dist/cli/main.js"
