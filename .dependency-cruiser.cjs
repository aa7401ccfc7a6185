// Imports run one way: down the rooms of docs/architecture.md, never up, never in a circle.
// `npm run check:imports` (and .ci/run) fails on either.
/** The rooms of src/, top first. A room may import its own modules and any room below it. */
const layers = [
  ['cli'],
  ['fuse'],
  ['vfs'],
  ['cache/file', 'cache/meta'],
  ['read', 'write'],
  ['memory', 'backing'],
  ['store'],
  ['config'],
  ['metrics'],
  ['errors.ts', 'log.ts', 'disk.ts', 'types'],
];

const rooms = layers.flat();
const pattern = (names) => `^src/(${names.map((n) => n.replace('.', '\\.')).join('|')})`;

const upward = layers.flatMap((layer, depth) =>
  layer.flatMap((room) => {
    const notBelow = [...layers.slice(0, depth).flat(), ...layer.filter((r) => r !== room)];
    if (notBelow.length === 0) return [];
    return [
      {
        name: `down-only:${room}`,
        comment: `src/${room} imports only rooms below it (docs/architecture.md)`,
        severity: 'error',
        from: { path: pattern([room]) },
        to: { path: pattern(notBelow) },
      },
    ];
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle makes two modules one: break it with an interface in the lower one',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-tests',
      comment: 'the product never imports its tests or benchmarks',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'known-rooms',
      comment: 'every module of src/ lives in a room the layer list places',
      severity: 'error',
      from: { path: '^src/', pathNot: pattern(rooms) },
      to: {},
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a type that points up couples the rooms as much as a value does.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
