// The registry this project installs from serves only the linux builds of unrs-resolver (a jest dependency), so
// `npm install` writes a lockfile without the other platforms and `npm ci` then rejects it as out of sync.
// This adds the missing optional, platform-gated entries; run it after any `npm install` that rewrites the lock.
import fs from 'node:fs';
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
const pk = lock.packages;
const parent = Object.entries(pk).find(([k]) => k.endsWith('node_modules/unrs-resolver'));
const ver = parent[1].version;
const plat = {
  'android-arm-eabi': ['android', 'arm'], 'android-arm64': ['android', 'arm64'],
  'darwin-arm64': ['darwin', 'arm64'], 'darwin-x64': ['darwin', 'x64'], 'freebsd-x64': ['freebsd', 'x64'],
  'linux-arm-gnueabihf': ['linux', 'arm', 'glibc'], 'linux-arm-musleabihf': ['linux', 'arm', 'musl'],
  'linux-loong64-gnu': ['linux', 'loong64', 'glibc'], 'linux-loong64-musl': ['linux', 'loong64', 'musl'],
  'linux-ppc64-gnu': ['linux', 'ppc64', 'glibc'], 'linux-riscv64-gnu': ['linux', 'riscv64', 'glibc'],
  'linux-riscv64-musl': ['linux', 'riscv64', 'musl'], 'linux-s390x-gnu': ['linux', 's390x', 'glibc'],
  'openharmony-arm64': ['openharmony', 'arm64'], 'win32-arm64-msvc': ['win32', 'arm64'],
  'win32-ia32-msvc': ['win32', 'ia32'], 'win32-x64-msvc': ['win32', 'x64'],
};
for (const [suffix, [os, cpu, libc]] of Object.entries(plat)) {
  const key = `node_modules/@unrs/resolver-binding-${suffix}`;
  if (pk[key]) continue;
  const e = { version: ver, cpu: [cpu], dev: true };
  if (libc) e.libc = [libc];
  Object.assign(e, { license: 'MIT', optional: true, os: [os] });
  pk[key] = e;
}
lock.packages = Object.fromEntries(Object.entries(pk).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
