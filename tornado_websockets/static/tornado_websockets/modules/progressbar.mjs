// The ProgressBar lives in client.mjs; this module re-exports it for `import ProgressBar from ".../progressbar.mjs"`.
export {ProgressBar, ProgressBar as default} from "../client.mjs";
