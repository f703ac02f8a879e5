//! The command line, as clap sees it. Every user-facing word is Spanish; values with a domain
//! form (CCT, ciclo, fechas, ids, estados) arrive as strings and are parsed by the domain
//! newtypes, so their errors are the model's Spanish messages.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bitacora",
    version,
    about = "Bitácora: el PEMC, los acuerdos y las sesiones del Consejo Técnico Escolar, sin necesidad de internet.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Directorio de datos (por omisión, el de la plataforma: ~/.local/share/bitacora en Linux).
    #[arg(long, global = true, env = "BITACORA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Salida en JSON (comandos de consulta).
    #[arg(long, global = true)]
    pub json: bool,
    /// Ciclo escolar con el que trabajar, si el equipo tiene más de uno (p. ej. 2025-2026).
    #[arg(long, global = true, value_name = "CICLO")]
    pub ciclo: Option<String>,
    #[command(subcommand)]
    pub comando: Comando,
}

#[derive(Debug, Subcommand)]
pub enum Comando {
    /// Prepara este equipo para una escuela y un ciclo (sin conexión).
    Init(Init),
    /// Programa Escolar de Mejora Continua: diagnóstico, objetivos, metas y acciones.
    #[command(subcommand)]
    Pemc(Pemc),
    /// Sesiones del Consejo Técnico Escolar.
    #[command(subcommand)]
    Sesion(SesionCmd),
    /// Acuerdos y compromisos (Cuaderno de Bitácora).
    #[command(subcommand)]
    Acuerdo(AcuerdoCmd),
    /// Concentrado por grupo (conteos, nunca nombres de alumnos).
    #[command(subcommand)]
    Grupo(GrupoCmd),
    /// Valores distintos escritos a la vez en dos equipos.
    #[command(subcommand)]
    Conflictos(ConflictosCmd),
    /// Quién cambió qué y cuándo.
    Historial(Historial),
    /// Resumen de la escuela: PEMC, logros, acuerdos, alumnos que requieren apoyo.
    Resumen(ResumenArgs),
    /// Exporta los datos de la escuela.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Paquetes de cambios para llevar en memoria USB.
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Documento de la zona: buenas prácticas que las escuelas comparten.
    #[command(subcommand)]
    Zona(ZonaCmd),
    /// Conecta este equipo con el servidor de la zona (guarda el servidor y el token).
    Login {
        /// Dirección del servidor, p. ej. https://zona14.example.mx
        #[arg(long)]
        servidor: String,
        /// El token que le dio la supervisión (no se vuelve a mostrar).
        #[arg(long)]
        token: String,
    },
    /// Sincroniza los documentos de la escuela (y de su zona) con el servidor.
    Sync {
        /// Se queda conectado: los cambios de este equipo y del servidor fluyen al momento
        /// (Ctrl-C para terminar).
        #[arg(long)]
        watch: bool,
    },
    /// Cambios sin confirmar, última sincronización y si el servidor responde.
    Estado,
}

/// `--ciclo` (global) is required here.
#[derive(Debug, Args)]
pub struct Init {
    /// Clave de Centro de Trabajo, p. ej. 07DPR0123X.
    #[arg(long)]
    pub cct: String,
    /// Nombre de la escuela.
    #[arg(long)]
    pub nombre: String,
    /// Clave de la zona escolar, p. ej. 07FIZ0014.
    #[arg(long)]
    pub zona: String,
    /// Su nombre, para que el historial diga quién hizo cada cambio.
    #[arg(long)]
    pub autor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Pemc {
    /// Catálogo de ámbitos del ciclo.
    Ambitos,
    /// Diagnóstico por ámbito.
    #[command(subcommand)]
    Diagnostico(DiagnosticoCmd),
    /// Objetivos: ¿qué queremos lograr? ¿para qué?
    #[command(subcommand)]
    Objetivo(ObjetivoCmd),
    /// Metas: ¿cuánto? ¿de qué manera? ¿cuándo?
    #[command(subcommand)]
    Meta(MetaCmd),
    /// Acciones de cada meta.
    #[command(subcommand)]
    Accion(AccionCmd),
}

#[derive(Debug, Subcommand)]
pub enum DiagnosticoCmd {
    /// Escribe el diagnóstico de un ámbito y/o su prioridad.
    Set {
        #[arg(long)]
        ambito: String,
        #[arg(long)]
        texto: Option<String>,
        /// 1 es la más alta.
        #[arg(long, value_parser = entero)]
        prioridad: Option<i64>,
    },
    /// Muestra el diagnóstico.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum ObjetivoCmd {
    Add {
        /// ¿Qué queremos lograr?
        #[arg(long)]
        texto: String,
        /// ¿Para qué?
        #[arg(long, default_value = "")]
        para_que: String,
        /// Clave de ámbito (se puede repetir); vea `bitacora pemc ambitos`.
        #[arg(long = "ambito", required = true)]
        ambitos: Vec<String>,
    },
    List(Listado),
    Archivar(IdArg),
}

#[derive(Debug, Subcommand)]
pub enum MetaCmd {
    Add {
        #[arg(long)]
        objetivo: String,
        #[arg(long)]
        descripcion: String,
        #[arg(long, default_value = "")]
        indicador: String,
        #[arg(long, value_parser = decimal, allow_negative_numbers = true)]
        linea_base: Option<f64>,
        #[arg(long, value_parser = decimal, allow_negative_numbers = true)]
        valor_meta: Option<f64>,
        #[arg(long, default_value = "")]
        unidad: String,
        #[arg(long)]
        fecha_limite: Option<String>,
    },
    List {
        #[arg(long)]
        objetivo: Option<String>,
        #[command(flatten)]
        listado: Listado,
    },
    /// Registra el nivel de logro de una meta con su evidencia (seguimiento).
    Logro {
        id: String,
        /// cumplida, avance_significativo o escaso_o_nulo.
        #[arg(long)]
        nivel: String,
        #[arg(long, default_value = "")]
        evidencia: String,
        /// Fecha del registro (por omisión, hoy).
        #[arg(long)]
        fecha: Option<String>,
    },
    Archivar(IdArg),
}

#[derive(Debug, Subcommand)]
pub enum AccionCmd {
    Add {
        #[arg(long)]
        meta: String,
        #[arg(long)]
        descripcion: String,
        #[arg(long = "responsable")]
        responsables: Vec<String>,
        #[arg(long, default_value = "")]
        recursos: String,
        /// Costo estimado en pesos.
        #[arg(long, value_parser = decimal, allow_negative_numbers = true)]
        costo: Option<f64>,
        #[arg(long)]
        inicio: Option<String>,
        #[arg(long)]
        fin: Option<String>,
    },
    List {
        #[arg(long)]
        meta: Option<String>,
        #[command(flatten)]
        listado: Listado,
    },
    /// Cambia el estado: pendiente, en_proceso, realizada o cancelada.
    Estado {
        id: String,
        estado: String,
    },
    Archivar(IdArg),
}

#[derive(Debug, Subcommand)]
pub enum SesionCmd {
    Add {
        /// intensiva, ordinaria o extraordinaria.
        #[arg(long)]
        fase: String,
        #[arg(long, value_parser = entero)]
        numero: i64,
        #[arg(long)]
        fecha: String,
        #[arg(long = "asistente")]
        asistentes: Vec<String>,
        #[arg(long, default_value = "")]
        proposito: String,
        #[arg(long, default_value = "")]
        productos: String,
        /// Prácticas educativas y materiales que funcionaron.
        #[arg(long, default_value = "")]
        practicas: String,
    },
    List(Listado),
    Show(IdArg),
    /// Edita productos y prácticas de una sesión.
    Edit {
        id: String,
        #[arg(long)]
        productos: Option<String>,
        #[arg(long)]
        practicas: Option<String>,
    },
    Archivar(IdArg),
}

#[derive(Debug, Subcommand)]
pub enum AcuerdoCmd {
    Add {
        #[arg(long)]
        texto: String,
        #[arg(long = "responsable")]
        responsables: Vec<String>,
        #[arg(long)]
        fecha_compromiso: Option<String>,
        /// Sesión de la que surge el acuerdo.
        #[arg(long)]
        sesion: Option<String>,
    },
    List {
        /// Solo los de este estado.
        #[arg(long)]
        estado: Option<String>,
        #[command(flatten)]
        listado: Listado,
    },
    Show(IdArg),
    /// Edita el texto (en $EDITOR, o con --texto), los responsables o la fecha compromiso.
    Edit {
        id: String,
        #[arg(long)]
        texto: Option<String>,
        /// Reemplaza los responsables (se puede repetir).
        #[arg(long = "responsable")]
        responsables: Vec<String>,
        #[arg(long)]
        fecha_compromiso: Option<String>,
    },
    /// Cambia el estado: pendiente, en_proceso, cumplido o cancelado.
    Estado {
        id: String,
        estado: String,
        /// Sesión en la que se revisó su cumplimiento.
        #[arg(long)]
        sesion_revision: Option<String>,
    },
    Archivar(IdArg),
}

#[derive(Debug, Subcommand)]
pub enum GrupoCmd {
    #[command(subcommand)]
    Concentrado(ConcentradoCmd),
}

#[derive(Debug, Subcommand)]
pub enum ConcentradoCmd {
    /// Registra conteos de un grupo en un corte.
    Set(Box<ConcentradoSet>),
    /// Muestra el concentrado.
    Show {
        #[arg(long)]
        corte: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ConcentradoSet {
    #[arg(long, value_parser = entero, allow_negative_numbers = true)]
    pub grado: i64,
    #[arg(long)]
    pub grupo: String,
    /// diagnostico, intermedio o cierre.
    #[arg(long)]
    pub corte: String,
    #[command(flatten)]
    pub conteos: Conteos,
}

macro_rules! conteos {
    ($($campo:ident = $opcion:literal),+ $(,)?) => {
        /// The counts of seed 002, each optional.
        #[derive(Debug, Args)]
        pub struct Conteos {
            $(
                #[arg(long = $opcion, value_parser = entero, allow_negative_numbers = true)]
                pub $campo: Option<i64>,
            )+
        }
        impl Conteos {
            pub fn pares(&self) -> Vec<(&'static str, i64)> {
                let mut v = Vec::new();
                $( if let Some(n) = self.$campo { v.push((stringify!($campo), n)); } )+
                v
            }

            /// The option, as the person types it, that sets the count `clave` of the model
            /// (e.g. `--apoyo-lectura` for `apoyo_lectura`).
            pub fn opcion(clave: &str) -> Option<&'static str> {
                match clave {
                    $( stringify!($campo) => Some(concat!("--", $opcion)), )+
                    _ => None,
                }
            }
        }
    };
}
conteos!(
    inscritos_inicio = "inscritos-inicio",
    inscritos_fin = "inscritos-fin",
    promedio_9_10 = "promedio-9-10",
    promedio_8_9 = "promedio-8-9",
    promedio_7_8 = "promedio-7-8",
    promedio_6_7 = "promedio-6-7",
    promovidos_condiciones = "promovidos-condiciones",
    no_promovidos = "no-promovidos",
    apoyo_lectura = "apoyo-lectura",
    apoyo_escritura = "apoyo-escritura",
    apoyo_matematicas = "apoyo-matematicas",
    faltan_constantemente = "faltan-constantemente",
    no_se_involucran = "no-se-involucran",
    dificultad_relacionarse = "dificultad-relacionarse",
);

#[derive(Debug, Subcommand)]
pub enum ConflictosCmd {
    List,
    /// Elige uno de los valores en conflicto.
    Resolve {
        /// La ruta que muestra `conflictos list`.
        ruta: String,
        /// El número de la opción elegida.
        #[arg(long, value_parser = entero)]
        opcion: i64,
    },
}

#[derive(Debug, Args)]
pub struct Historial {
    /// Muestra solo los últimos N cambios.
    #[arg(long, value_parser = entero)]
    pub limite: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ResumenArgs {
    /// Calcula los vencimientos a esta fecha (por omisión, hoy).
    #[arg(long)]
    pub fecha: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// Todo el documento de la escuela en JSON.
    Json {
        /// Archivo de salida (por omisión, la salida estándar).
        #[arg(long)]
        salida: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BundleCmd {
    /// Escribe un paquete con los cambios de este equipo.
    Export {
        #[arg(long)]
        salida: PathBuf,
    },
    /// Aplica un paquete recibido (aplicarlo dos veces no cambia nada).
    Import { archivo: PathBuf },
    /// Sube un paquete al servidor (p. ej. desde un café internet, con el token de la escuela).
    Subir { archivo: PathBuf },
    /// Descarga del servidor el paquete de regreso de esta escuela.
    Bajar {
        #[arg(long)]
        salida: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ZonaCmd {
    /// Buenas prácticas compartidas en la zona.
    #[command(subcommand)]
    Practica(PracticaCmd),
}

#[derive(Debug, Subcommand)]
pub enum PracticaCmd {
    /// Comparte una práctica de esta escuela con la zona (la verán las demás escuelas al sincronizar).
    Add {
        #[arg(long)]
        titulo: String,
        #[arg(long, default_value = "")]
        descripcion: String,
        /// Clave de ámbito (vea `bitacora pemc ambitos`).
        #[arg(long)]
        ambito: Option<String>,
    },
    /// Lista las prácticas compartidas en la zona.
    List(Listado),
}

#[derive(Debug, Args)]
pub struct Listado {
    /// Incluye los registros archivados.
    #[arg(long)]
    pub archivados: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    pub id: String,
}

fn entero(s: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("se espera un número entero, no «{s}»"))
}

fn decimal(s: &str) -> Result<f64, String> {
    s.trim()
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("se espera un número (p. ej. 12.5), no «{s}»"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitacora_core::model::escuela::CAMPOS_CONCENTRADO;
    use clap::{Args, CommandFactory};

    #[test]
    fn la_cli_es_valida() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cada_conteo_del_modelo_tiene_la_opcion_que_clap_acepta() {
        let cmd = Conteos::augment_args(clap::Command::new("conteos"));
        for (clave, _) in CAMPOS_CONCENTRADO {
            let opcion = Conteos::opcion(clave).unwrap_or_else(|| panic!("{clave} sin opción"));
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == *clave)
                .unwrap_or_else(|| panic!("{clave} no es un argumento"));
            assert_eq!(Some(&opcion[2..]), arg.get_long(), "{clave}");
        }
        assert_eq!(Conteos::opcion("grado"), None);
    }
}
