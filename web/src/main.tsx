import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, getJson, saveToken, savedToken, type Whoami } from "./api";
import { useHashRoute } from "./hooks";
import { ClusterMap } from "./pages/ClusterMap";
import { JobPage } from "./pages/JobPage";
import { Jobs } from "./pages/Jobs";
import { Queues } from "./pages/Queues";
import { Services } from "./pages/Services";
import { SignIn } from "./pages/SignIn";
import { Submit } from "./pages/Submit";
import { Usage } from "./pages/Usage";
import { UtilisationPage } from "./pages/Utilisation";
import "./style.css";

interface NavItem {
  path: string;
  label: string;
  roles: Whoami["role"][];
}

// What a role sees: agents cannot read jobs, so they get the map only.
const NAV: NavItem[] = [
  { path: "/map", label: "Cluster map", roles: ["admin", "user", "agent"] },
  { path: "/jobs", label: "Jobs", roles: ["admin", "user"] },
  { path: "/services", label: "Services", roles: ["admin", "user"] },
  { path: "/queues", label: "Queues", roles: ["admin", "user"] },
  { path: "/utilisation", label: "Utilisation", roles: ["admin", "user"] },
  { path: "/usage", label: "Usage", roles: ["admin", "user"] },
  { path: "/submit", label: "Submit job", roles: ["admin", "user"] },
];

function Page({ route, me }: { route: string; me: Whoami }) {
  const [path, query = ""] = route.split("?");
  const params = new URLSearchParams(query);
  const job = path.match(/^\/jobs\/(\d+)$/);
  if (job) return <JobPage id={Number(job[1])} me={me} />;
  const allowed = NAV.find((n) => n.path === path);
  if (allowed && !allowed.roles.includes(me.role)) {
    return <p class="error">A token with role {me.role} may not see this page.</p>;
  }
  switch (path) {
    case "/map":
      return <ClusterMap />;
    case "/jobs":
      return <Jobs params={params} />;
    case "/services":
      return <Services me={me} />;
    case "/queues":
      return <Queues />;
    case "/utilisation":
      return <UtilisationPage />;
    case "/usage":
      return <Usage />;
    case "/submit":
      return <Submit />;
    default:
      return <p class="error">No page {path}. Pick one above.</p>;
  }
}

function App() {
  const route = useHashRoute();
  const [me, setMe] = useState<Whoami | null>(null);
  const [checking, setChecking] = useState(savedToken() !== null);
  const [expired, setExpired] = useState<string>();

  // A token kept from earlier in this tab: check it is still good.
  useEffect(() => {
    const token = savedToken();
    if (!token) return;
    getJson<Whoami>("/api/v1/whoami", token)
      .then(setMe)
      .catch((e: ApiError) => {
        saveToken(null);
        setExpired(e.message);
      })
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <p class="muted pad">Checking the saved token…</p>;
  if (!me) {
    return (
      <SignIn
        notice={expired}
        onSignedIn={(who, token) => {
          saveToken(token);
          setMe(who);
        }}
      />
    );
  }
  const current = route.split("?")[0];
  return (
    <>
      <header class="top">
        <a class="brand" href="#/map">
          icos
        </a>
        <nav>
          {NAV.filter((n) => n.roles.includes(me.role)).map((n) => (
            <a href={`#${n.path}`} class={current === n.path || current.startsWith(`${n.path}/`) ? "active" : ""}>
              {n.label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="whoami">
          {me.user || me.name} · {me.role}
        </span>
        <button
          class="link"
          onClick={() => {
            saveToken(null);
            setMe(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} me={me} />
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
