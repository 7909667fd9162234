// The microphone's AudioWorklet (loaded by app.js): downsamples to 16 kHz mono and posts 16-bit blocks of 640
// samples (40 ms) as ArrayBuffers; the page sends each one over the WebSocket after the 4 bytes "KBAU".
"use strict";

class KibitzMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = (options && options.processorOptions) || {};
    this.step = sampleRate / (settings.rate || 16000); // input samples per output sample (1 at 16 kHz)
    this.size = settings.block || 640;
    this.block = new Int16Array(this.size);
    this.filled = 0;
    this.sum = 0; // the input samples since the last output sample, averaged (a simple low-pass)
    this.count = 0;
    this.position = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input.length) return true; // no microphone connected yet
    const channel = input[0];
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count++;
      this.position += 1;
      if (this.position >= this.step) {
        this.position -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  push(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.block[this.filled++] = v < 0 ? v * 32768 : v * 32767;
    if (this.filled === this.size) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(this.size);
      this.filled = 0;
    }
  }
}

registerProcessor("kibitz-mic", KibitzMic);
