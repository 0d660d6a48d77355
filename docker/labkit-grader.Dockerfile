# The course image for `labkit grade --on sagemaker` and `labkit check --on sagemaker`.
#
# It holds what a learner gets (the learner copy: labs, data, the labkit package) and the pinned
# environment, nothing secret: the lab's nbgrader source, hidden tests and answer keys reach
# each job as its input, locked to the job's user, and leave with it. Build it once per course
# version, from the learner copy, and push it to ECR in the account and region of the jobs:
#
#   .venv/bin/labkit release --out build/release
#   docker build -f docker/labkit-grader.Dockerfile -t labkit-grader:0.1.0 build/release/ml-infra-labs
#   aws ecr create-repository --repository-name labkit-grader
#   aws ecr get-login-password | docker login --username AWS --password-stdin <account>.dkr.ecr.<region>.amazonaws.com
#   docker tag labkit-grader:0.1.0 <account>.dkr.ecr.<region>.amazonaws.com/labkit-grader:0.1.0
#   docker push <account>.dkr.ecr.<region>.amazonaws.com/labkit-grader:0.1.0
#
# The tag is the course version (labkit.__version__): `--on sagemaker` asks for
# <account>.dkr.ecr.<region>.amazonaws.com/labkit-grader:<version> unless --image or
# $LABKIT_GRADER_IMAGE names another. SageMaker Processing runs the job's ContainerEntrypoint
# (`python3 -m labkit.scale.entry ...`) as root; the grader then runs learner code under other
# uids, so the interpreter and the course files must be readable by everyone (chmod below).
FROM public.ecr.aws/docker/library/python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LABKIT_BACKEND=offline \
    MPLBACKEND=Agg

COPY . /opt/course
WORKDIR /opt/course

# torch's CPU build first (the PyPI wheel is the CUDA build, several GB), then the course's pins.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -e /opt/course \
 && python -m ipykernel install --prefix /usr/local --name python3 --display-name "Python 3" \
 && chmod -R a+rX /opt/course /usr/local \
 && python -c "import labkit.scale.entry, labkit.grading, nbgrader, papermill; print('labkit image ok')"
