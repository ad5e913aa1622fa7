/**
 * The suite's one entry point: one process, one server, one bundle, one shared worker, then
 * every test module in turn.
 */
import { after, before } from 'node:test';
import { setUp, tearDown } from './harness';

before(setUp, { timeout: 120_000 });
after(tearDown, { timeout: 60_000 });

import './tests/saga';
import './tests/activities';
import './tests/timers';
import './tests/messages';
import './tests/children';
import './tests/lifecycle';
import './tests/extensibility';
import './tests/worker';
