export { writeSynthGGUF as writeSynth } from '../../runtime/node/write_file.js';
