/**
 * The layering rules of docs/architecture.md, enforced by dependency-cruiser
 * (`npm run lint:layers`, run by `npm test` through test/unit/layers.test.ts
 * and by .ci/run). Each rule's name is what a violation prints; the test
 * plants one violation per rule and checks that this very rule fires.
 *
 * Paths are relative to the repository root. `test/`, `bench/` and `scripts/`
 * are callers from outside the product and are not held to the layers.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'pure-core',
      comment:
        'machines/, src/placement/ and src/domain/ are pure: they import only xstate and each other. ' +
        'No I/O (NATS, the ORM, Fastify, node:fs/net), so they run the same in a test, the coordinator and the simulator.',
      severity: 'error',
      from: { path: '^(machines|src/placement|src/domain)/' },
      to: {
        pathNot: ['^(machines|src/placement|src/domain)/', '^node_modules/xstate/'],
      },
    },
    {
      name: 'wire-is-standalone',
      comment:
        'src/wire/ (NATS subjects, message schemas, the connection) is the protocol both sides speak. ' +
        'It imports only src/domain/ and its libraries, never a side of the conversation.',
      severity: 'error',
      from: { path: '^src/wire/' },
      to: { path: '^(actors|src/(api|db|cli|runtimes|sim|auth|capacity|config))/' },
    },
    {
      name: 'api-not-actors',
      comment:
        'The API reaches the coordinator and the agents only through the wire protocol (src/wire/), ' +
        'never by importing actors/ or a runtime.',
      severity: 'error',
      from: { path: '^src/api/' },
      to: { path: '^(actors|src/runtimes|src/sim|src/cli)/' },
    },
    {
      name: 'domain-not-api',
      comment:
        'Domain services and infrastructure (domain, placement, capacity, auth, config, logger, db, wire, actors, ' +
        'runtimes, sim) never import the API layer: HTTP shapes and statuses stay in src/api/.',
      severity: 'error',
      from: { path: '^(machines|actors|src/(domain|placement|capacity|auth|config|logger|db|wire|runtimes|sim))/' },
      to: { path: '^src/api/' },
    },
    {
      name: 'services-not-http',
      comment:
        "A resource's service (src/api/<resource>/service.ts, serialize.ts) holds what the resource does, " +
        'not how HTTP carries it: it never imports Fastify, the app, the plugins or a routes file. ' +
        'Routes call services; services throw domain errors that the error plugin maps to statuses.',
      severity: 'error',
      from: { path: '^src/api/[^/]+/(service|serialize)\\.ts$' },
      to: { path: ['^src/api/(app|server|types)\\.ts$', '^src/api/plugins/', '^src/api/[^/]+/routes\\.ts$', '^node_modules/fastify/'] },
    },
    {
      name: 'agent-no-database',
      comment:
        'Nodes sit outside the control plane: the agent and the runtimes talk only NATS and never load the ' +
        'database layer, MikroORM or a PostgreSQL driver, directly or through what they import.',
      severity: 'error',
      from: { path: '^(actors/agent|src/runtimes)/' },
      to: { path: ['^src/db/', '^actors/(coordinator|capacity)/', '^node_modules/(@mikro-orm|pg|knex)/'], reachable: true },
    },
    {
      name: 'agent-stays-small',
      comment:
        'An agent runs on every GPU host and idles most of its life: it loads the NATS client, the wire schemas and ' +
        'its runtimes, never the HTTP server, the state-machine library or the simulator\'s charts ' +
        '(docs/performance.md, process memory: each of these is megabytes of resident code).',
      severity: 'error',
      from: { path: ['^(actors/agent|src/runtimes)/', '^src/cli/agent\\.ts$'] },
      to: {
        path: '^node_modules/(fastify|@fastify|xstate|@statelyai|vega|vega-lite|@resvg|cli-progress|pino-pretty)/',
        reachable: true,
      },
    },
    {
      name: 'postgres-adapters-at-the-root',
      comment:
        'Only the composition roots (the coordinator process wiring, actors/coordinator/index.ts, and src/cli/) ' +
        'import the Postgres adapters of the coordinator and capacity ports. Everything else speaks the port.',
      severity: 'error',
      from: { path: '^(machines|actors|src)/', pathNot: ['^actors/coordinator/index\\.ts$', '^src/cli/'] },
      to: { path: '^actors/(coordinator|capacity)/store\\.ts$' },
    },
    {
      name: 'simulator-no-database',
      comment: '`scalar simulate` replays in memory: nothing it loads, directly or through what it imports, is src/db or MikroORM.',
      severity: 'error',
      from: { path: '^src/sim/' },
      to: { path: ['^src/db/', '^node_modules/(@mikro-orm|pg|knex)/'], reachable: true },
    },
    {
      name: 'no-cycles',
      comment:
        'No import cycles, type-only ones included: each module can be understood (and loaded) after the ' +
        'ones it imports; two modules that need each other belong together or need a third that both import.',
      severity: 'error',
      from: { path: '^(machines|actors|src)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^(machines|actors|src|node_modules)/',
    tsPreCompilationDeps: true,
    // Resolve node_modules by the path it is reached by, so a checkout whose
    // node_modules is a link (the planted-violation test's copy) checks the same.
    preserveSymlinks: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
