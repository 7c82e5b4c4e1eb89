#!/usr/bin/env node
// The `scalar` executable. It registers tsx in this very process (no child
// process), so signals such as SIGTERM reach the real server directly.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
