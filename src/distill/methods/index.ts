// The built-in methods: importing this module registers each (in its own file). Order = listing order.
export { dc, dsa } from './dc.js';
export { idc, idcI } from './idc.js';
export { mtt, tesla, ftd } from './mtt.js';
export { datm } from './datm.js';
export { dm } from './dm.js';
export { idm } from './idm.js';
export { m3d } from './m3d.js';
export { cafe } from './cafe.js';
export { haba } from './haba.js';
export { dd } from './dd.js';
export { kip } from './kip.js';
export { rfad } from './rfad.js';
export { frepo } from './frepo.js';
export { ncfm } from './ncfm.js';
