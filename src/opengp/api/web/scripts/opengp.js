// Starts the NHS.UK frontend's components (show/hide password, error summary focus, header
// menu). Progressive enhancement only: every page works without JavaScript.
import { initAll } from "./nhsuk-frontend.min.js";

initAll();
