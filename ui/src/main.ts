import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

// The theme follows the system's: `data-theme` on the root, which the
// style sheet reads, kept in step with prefers-color-scheme.
const dark = window.matchMedia('(prefers-color-scheme: dark)');
const theme = () => (document.documentElement.dataset.theme = dark.matches ? 'dark' : 'light');
theme();
dark.addEventListener('change', theme);

const target = document.getElementById('app');
if (!target) throw new Error('no #app element');
export default mount(App, { target });
